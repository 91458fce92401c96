"""`posttrain eval`: evaluate a model on tasks, compare two evaluations, list the built-in tasks.

    posttrain eval MODEL_DIR --tasks arithmetic,countdown [--limit N] [--batch-size B]
                   [--output-dir DIR] [--seed S] [--data gsm8k=PATH] [--set gsm8k.few_shot=8]
    posttrain eval MODEL_DIR --tasks arithmetic --samples 8 --temperature 0.8 [--k 1,2,4,8]
                   [--best-of math | --best-of reward_model --best-of-option path=RM_DIR]
    posttrain eval MODEL_DIR --tasks arithmetic --samples 8 --temperature 0.8 --adaptive 0.8
    posttrain eval compare DIR_A DIR_B [--iterations 1000] [--seed S]
    posttrain eval list

MODEL_DIR may be a LoRA adapter directory (its base comes from adapter_config.json).
`--set KEY=VALUE` applies to every task, `--set TASK.KEY=VALUE` to one (TASK: as given in --tasks,
or a task file's name without .yaml).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from posttrain.errors import UserError

DEFAULT_OUTPUT_ROOT = Path("runs") / "eval"


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on tasks, or compare two evaluations",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("model", help="model or adapter directory, hub id or 'tiny'; or 'compare', or 'list'")
    p.add_argument("paths", nargs="*", help="with 'compare': the two eval output directories, A then B")
    p.add_argument("--tasks", help="comma-separated built-in task names and/or task YAML files")
    p.add_argument("--limit", type=int, help="evaluate only the first N documents of each task")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--output-dir", help=f"where results.json and samples.jsonl go (default {DEFAULT_OUTPUT_ROOT}/<model>)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    p.add_argument("--data", action="append", default=[], metavar="TASK=PATH", help="a task's data file or directory")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[TASK.]KEY=VALUE",
        help="override a task setting (typed as YAML), e.g. --set gsm8k.few_shot=8",
    )
    p.add_argument(
        "--backend",
        choices=["hf", "vllm", "openai"],
        default="hf",
        help="vllm: GPU only, needs vllm installed; openai: a running OpenAI-compatible server "
        "(--base-url), MODEL being its model name",
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--iterations", type=int, default=1000, help="compare: bootstrap resamples")
    p.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="generation tasks: N samples per item, reported as pass@k, maj@k (and best_of@k)",
    )
    p.add_argument("--k", help="with --samples: the k values, comma-separated (default 1,2,4,...,N)")
    p.add_argument("--temperature", type=float, help="with --samples: sampling temperature (default: the task's)")
    p.add_argument(
        "--best-of",
        metavar="SCORER",
        help="with --samples: a reward name (posttrain/rewards) "
        "whose score picks the best of k samples, e.g. math, reward_model",
    )
    p.add_argument(
        "--best-of-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the --best-of scorer (typed as YAML), e.g. path=RM_DIR",
    )
    p.add_argument(
        "--adaptive",
        type=float,
        metavar="P",
        help="with --samples N: sample one at a time and stop "
        "once the model's self-evaluated P(no better) exceeds P (a self-evaluation-trained model)",
    )
    from posttrain.generation.openai_args import add_server_arguments

    add_server_arguments(p, endpoint_default="completions")
    return p


def voting_options(args: argparse.Namespace):
    """VotingOptions from --samples/--k/--temperature/--best-of, or None without --samples."""
    given = [
        flag
        for flag, value in (
            ("--k", args.k),
            ("--temperature", args.temperature),
            ("--best-of", args.best_of),
            ("--adaptive", args.adaptive),
        )
        if value is not None
    ]
    if args.samples is None:
        if given or args.best_of_option:
            raise UserError(f"{(given or ['--best-of-option'])[0]} needs --samples N")
        return None
    import yaml

    from posttrain.eval.voting import VotingOptions, check_options

    try:
        ks = tuple(int(k) for k in args.k.split(",") if k.strip()) if args.k else ()
    except ValueError:
        raise UserError(f"--k {args.k!r}: expected comma-separated integers, e.g. 1,2,4") from None
    scorer_options = {}
    for item in args.best_of_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--best-of-option {item!r}: expected KEY=VALUE")
        scorer_options[key] = yaml.safe_load(value)
    if scorer_options and not args.best_of:
        raise UserError("--best-of-option needs --best-of SCORER")
    options = VotingOptions(args.samples, ks, args.temperature, args.best_of, scorer_options, args.adaptive)
    check_options(options)
    return options


def eval_command(args: argparse.Namespace) -> None:
    if args.model == "compare":
        _compare_command(args)
    elif args.model == "list":
        _list_command()
    else:
        if args.paths:
            raise UserError(f"unexpected arguments after the model: {' '.join(args.paths)}")
        _evaluate_command(args)


def _evaluate_command(args: argparse.Namespace) -> None:
    from posttrain.eval.engine import resolve_tasks, run_tasks
    from posttrain.eval.report import results_table, write_outputs

    specs = [s.strip() for s in (args.tasks or "").split(",") if s.strip()]
    if not specs:
        raise UserError("give the tasks to run: --tasks NAME[,NAME...] (posttrain eval list shows them)")
    overrides, data = split_overrides(specs, args.overrides), split_data(specs, args.data)
    tasks = resolve_tasks(specs, overrides, data)  # fail on a typo before loading the model
    voting = voting_options(args)
    if voting is not None:
        from posttrain.eval.voting import correctness_rule

        for task in tasks:
            correctness_rule(task)
    if args.backend == "openai":
        from posttrain.generation.openai_args import (
            load_server_tokenizer,
            open_server_backend,
            server_identity,
        )

        backend = open_server_backend(args.model, args, load_server_tokenizer(args.tokenizer or args.model))
        server = {"server": server_identity(backend, args)}
    else:
        from posttrain.generation.factory import make_backend

        backend, server = make_backend(args.model, args.backend, args.batch_size, args.seed, args.dtype), {}
    results = run_tasks(backend, tasks, args.limit, args.seed, voting=voting)
    out_dir = Path(args.output_dir) if args.output_dir else DEFAULT_OUTPUT_ROOT / _safe_name(args.model)
    run_info = {
        "model": args.model,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "seed": args.seed,
        "dtype": args.dtype,
        **server,
        **(
            {
                "samples": voting.samples,
                "k": list(voting.curve_ks()),
                "temperature": voting.temperature,
                "best_of": voting.scorer,
                "adaptive": voting.adaptive,
            }
            if voting
            else {}
        ),
    }
    write_outputs(out_dir, results, run_info)
    print(results_table(results))
    print(f"results: {out_dir / 'results.json'}\nsamples: {out_dir / 'samples.jsonl'}")


def _aliases(spec: str) -> set[str]:
    return {spec, Path(spec).stem} if spec.endswith((".yaml", ".yml")) else {spec}


def split_overrides(specs: list[str], items: list[str]) -> dict[str, list[str]]:
    """--set items per task: 'TASK.KEY=V' goes to TASK, 'KEY=V' to every task."""
    out: dict[str, list[str]] = {spec: [] for spec in specs}
    for item in items:
        head, _, rest = item.partition(".")
        owners = [spec for spec in specs if head in _aliases(spec)] if "=" not in head else []
        if owners and rest:
            for spec in owners:
                out[spec].append(rest)
        else:
            for spec in specs:
                out[spec].append(item)
    return out


def split_data(specs: list[str], items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        owners = [spec for spec in specs if name in _aliases(spec)]
        if not sep or not path:
            raise UserError(f"--data {item!r}: expected TASK=PATH")
        if not owners:
            raise UserError(f"--data {item!r}: '{name}' is not one of the tasks ({', '.join(specs)})")
        out.update({spec: path for spec in owners})
    return out


def _safe_name(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model.rstrip("/")).name or model) or "model"


def _compare_command(args: argparse.Namespace) -> None:
    from posttrain.eval.compare import compare_dirs, differences_table

    if len(args.paths) != 2:
        raise UserError("compare needs two eval output directories: posttrain eval compare DIR_A DIR_B")
    differences, changed = compare_dirs(args.paths[0], args.paths[1], args.iterations, args.seed)
    print(f"A: {args.paths[0]}\nB: {args.paths[1]}")
    print(differences_table(differences))
    if changed:
        print(f"note: task configurations differ between the runs for: {', '.join(changed)}")


def _list_command() -> None:
    from posttrain.eval.report import format_table
    from posttrain.eval.tasks.builtin import BUILTIN_TASKS, builtin_names

    rows = [[name, BUILTIN_TASKS[name]["kind"], BUILTIN_TASKS[name].get("description", "")] for name in builtin_names()]
    print(format_table(rows, ["task", "kind", "description"]))
