"""`posttrain analyze neurons|displacement`: MLP neurons read through the LM head, found by token,
clamped; a preference run's chosen and rejected log-probs over steps, with the displacement flag.

    posttrain analyze neurons MODEL --top 10 [--layer L] [--neurons 3,17]   # each neuron's top tokens
    posttrain analyze neurons MODEL --tokens Paris,cat --top 5              # neurons promoting tokens
    posttrain analyze neurons MODEL --layer 1 --clamp 3,17=8.0 --prompt "Tell me a story"
    (add --out report.json to keep the numbers)
    posttrain analyze displacement RUN_DIR [--out displacement.png] [--json summary.json]
"""

from __future__ import annotations

import argparse
import difflib
import json


def add_parsers(subparsers) -> None:
    analyze = subparsers.add_parser(
        "analyze",
        help="look inside a model (MLP neurons through the LM head) or a preference run (likelihood displacement)",
    )
    sub = analyze.add_subparsers(dest="analyze_command", required=True)
    n = sub.add_parser(
        "neurons",
        help="project MLP neurons (down_proj columns) through the final norm "
        "and LM head to their top tokens; find neurons for tokens; clamp neurons",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    n.add_argument("model", help="model directory, hub id, or 'tiny'")
    n.add_argument("--top", type=int, default=10, help="tokens shown per neuron, and neurons per token")
    n.add_argument("--layer", type=int, help="the layer whose neurons are shown or clamped (default: the last)")
    n.add_argument("--neurons", help="comma-separated neuron indices (default: the layer's --top strongest)")
    n.add_argument(
        "--tokens", help="comma-separated strings: the neurons (all layers) promoting each one's first token"
    )
    n.add_argument("--clamp", metavar="N1,N2=VALUE", help="set these neurons of --layer to VALUE while generating")
    n.add_argument("--prompt", help="with --clamp: the prompt generated from, before and after clamping")
    n.add_argument("--max-new-tokens", type=int, default=32)
    n.add_argument("--out", help="also write the report as JSON to this file")
    n.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    n.set_defaults(tool_run=run_neurons)
    d = sub.add_parser(
        "displacement",
        help="plot a preference run's chosen and rejected log-probs over steps "
        "and flag likelihood displacement (chosen falling)",
    )
    d.add_argument("run_dir", help="a DPO/KTO-family run directory (its metrics.jsonl)")
    d.add_argument("--out", help="the plot (.png, .svg or .pdf; default RUN_DIR/displacement.png)")
    d.add_argument("--json", help="also write the trends and the flag as JSON to this file")
    d.set_defaults(tool_run=run_displacement)


def _ints(text: str, flag: str) -> list[int]:
    from posttrain.errors import UserError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected comma-separated integers") from None


def parse_clamp(text: str) -> dict[int, float]:
    from posttrain.errors import UserError

    neurons, sep, value = text.rpartition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or number is None or not neurons:
        raise UserError(f"--clamp {text!r}: expected N1,N2=VALUE, e.g. 3,17=8.0")
    return {j: number for j in _ints(neurons, "--clamp")}


def word_diff(before: str, after: str) -> str:
    """Words removed as [-...-] and added as {+...+}, the rest as is."""
    a, b = before.split(), after.split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            parts += a[i1:i2]
        if op in ("delete", "replace"):
            parts.append("[-" + " ".join(a[i1:i2]) + "-]")
        if op in ("insert", "replace"):
            parts.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(parts)


def run_neurons(args: argparse.Namespace) -> int:
    from pathlib import Path

    from posttrain.analysis import neurons as nz
    from posttrain.checkpoint.io import write_text_atomically
    from posttrain.errors import UserError
    from posttrain.model.inference import load_model_and_tokenizer

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    if bool(args.clamp) != bool(args.prompt):
        raise UserError("--clamp and --prompt go together: the prompt is generated from before and after clamping")
    clamp = parse_clamp(args.clamp) if args.clamp else None
    model, tokenizer = load_model_and_tokenizer(args.model, args.dtype)
    layer = len(nz.decoder_layers(model)) - 1 if args.layer is None else args.layer
    report: dict = {"model": args.model, "layer": layer}
    show = lambda ids: [tokenizer.decode([i]) for i in ids]  # noqa: E731
    if args.tokens:
        report["tokens"] = _token_neurons(model, tokenizer, args.tokens, args.top, show)
    if args.neurons or not (args.tokens or clamp):
        chosen = _ints(args.neurons, "--neurons") if args.neurons else nz.strongest_neurons(model, layer, args.top)
        report["neurons"] = [
            {
                "neuron": j,
                "top_tokens": [[t, round(v, 4)] for t, v in zip(show([i for i, _ in top]), [v for _, v in top])],
            }
            for j, top in zip(chosen, nz.top_tokens(model, layer, chosen, args.top))
        ]
    if clamp:
        report["clamp"] = _clamp_diff(model, tokenizer, layer, clamp, args.prompt, args.max_new_tokens)
    print(_render(report))
    if args.out:
        write_text_atomically(Path(args.out), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


def run_displacement(args: argparse.Namespace) -> int:
    from pathlib import Path

    from posttrain.analysis import displacement
    from posttrain.checkpoint.io import write_text_atomically
    from posttrain.errors import UserError
    from posttrain.log import read_metrics, series_of

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    series = series_of(read_metrics(run_dir))
    if not any(k in series for k in ("logps_chosen", "eval_logps_chosen")):
        raise UserError(
            f"{run_dir}: its metrics.jsonl logs no chosen log-probs (logps_chosen): "
            "not a preference (DPO/KTO-family) run"
        )
    out = Path(args.out) if args.out else run_dir / "displacement.png"
    displacement.plot(series, out, run_dir.name)
    report = displacement.summary(series)
    for name in ("logps_chosen", "logps_rejected"):
        t = report[name]
        print(
            f"{name}: "
            + ("fewer than two values logged" if t is None else f"{t['start']:.3f} -> {t['end']:.3f} ({t['key']})")
        )
    print(f"likelihood displacement: {report['kind']}" if report["displacement"] else "no likelihood displacement")
    print(f"plot: {out}")
    if args.json:
        write_text_atomically(Path(args.json), json.dumps(report, indent=2) + "\n")
    return 0


def _token_neurons(model, tokenizer, tokens: str, k: int, show) -> list[dict]:
    from posttrain.analysis.neurons import neurons_for_token
    from posttrain.errors import UserError

    out = []
    for text in [t for t in tokens.split(",") if t]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"--tokens {text!r}: the tokenizer gives no token for it")
        found = neurons_for_token(model, ids[0], k)
        out.append(
            {
                "text": text,
                "token": show([ids[0]])[0],
                "token_id": ids[0],
                "neurons": [{"layer": l, "neuron": j, "logit": round(v, 4)} for l, j, v in found],
            }
        )
    return out


def _clamp_diff(model, tokenizer, layer: int, values: dict[int, float], prompt: str, max_new: int) -> dict:
    from posttrain.analysis.neurons import clamped
    from posttrain.generation.prompter import Prompter
    from posttrain.model.generate import GenerationConfig, generate_text
    from posttrain.model.inference import has_own_chat_template

    ids = Prompter(tokenizer, has_own_chat_template(tokenizer)).prompt(prompt)
    cfg = GenerationConfig(max_new_tokens=max_new)  # greedy: the difference is the clamp's alone
    before = generate_text(model, tokenizer, [ids], cfg)[0]
    with clamped(model, layer, values):
        after = generate_text(model, tokenizer, [ids], cfg)[0]
    return {
        "layer": layer,
        "values": {str(j): v for j, v in values.items()},
        "prompt": prompt,
        "before": before,
        "after": after,
        "diff": word_diff(before, after),
    }


def _render(report: dict) -> str:
    lines = []
    for entry in report.get("neurons", []):
        tokens = ", ".join(f"{t!r} {v:.3f}" for t, v in entry["top_tokens"])
        lines.append(f"layer {report['layer']} neuron {entry['neuron']}: {tokens}")
    for entry in report.get("tokens", []):
        found = ", ".join(f"L{n['layer']}.{n['neuron']} {n['logit']:.3f}" for n in entry["neurons"])
        lines.append(f"{entry['text']!r} (token {entry['token']!r}): {found}")
    if "clamp" in report:
        c = report["clamp"]
        lines += [
            f"clamp layer {c['layer']} {c['values']}",
            f"before: {c['before']!r}",
            f"after:  {c['after']!r}",
            f"diff:   {c['diff']}",
        ]
    return "\n".join(lines)
