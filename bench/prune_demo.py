#!/usr/bin/env python
"""Puzzle on the quickstart's SFT model: exact match before pruning, after the MIP selection, after
uptraining, against a naive baseline at the same parameter budget.

    OMP_NUM_THREADS=1 .venv/bin/python bench/prune_demo.py --parent runs/quickstart/sft/final \
        --data runs/quickstart/data --out runs/prune-demo [--budget 0.7] [--uptrain-steps 300]

- Puzzle: `posttrain prune recipes/tiny/prune.yaml` (alternatives kv1 / no-op attention and
  75/50/25% / no-op FFN per block, local distillation, replace-one-block KL, MIP under the budget),
  then its uptraining (posttrain distill from the parent, forward KL, top-64 cache).
- Naive baseline: every block's FFN narrowed uniformly to the widest width that fits the same
  budget (channels kept by the same importance score, no local distillation, no search), then
  the same uptraining recipe.
Exact match on DATA/test.jsonl (final number, greedy, 64 new tokens) as the quickstart measures it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def exact_match(model_dir: Path, test: Path, out_dir: Path) -> float:
    from posttrain.eval.engine import run_tasks
    from posttrain.eval.report import write_outputs
    from posttrain.generation.factory import make_backend
    from posttrain.train.periodic_eval import exact_match_task

    task = exact_match_task(str(test), "final_number", max_new_tokens=64)
    results = run_tasks(make_backend(str(model_dir), "hf", batch_size=50, seed=0), [task])
    write_outputs(out_dir, results, {"model": str(model_dir), "backend": "hf", "seed": 0})
    return results[0].values()["exact_match"]


def uniform_ffn_baseline(recipe, out_dir: Path) -> Path:
    """The parent with every FFN narrowed to the widest common width within the budget."""
    import torch

    from posttrain.checkpoint.io import save_model_dir
    from posttrain.config.recipe import ModelConfig
    from posttrain.model.load import load_model, load_tokenizer
    from posttrain.pruning import alternatives as alt
    from posttrain.pruning.local_distill import parent_activations
    from posttrain.pruning.run import assemble, calibration_blocks

    parent = load_model(ModelConfig(path=recipe.model)).eval().requires_grad_(False)
    config, tok = parent.config, load_tokenizer(recipe.model)
    total = sum(p.numel() for p in parent.parameters())
    saved_per_channel = 3 * config.hidden_size * config.num_hidden_layers
    width = config.intermediate_size - -(-(total - int(recipe.budget * total)) // saved_per_channel)
    train, _ = calibration_blocks(recipe, tok)
    acts = parent_activations(parent, train)
    variants = []
    for layer, act in zip(parent.model.layers, acts):
        with torch.no_grad():
            inputs = torch.cat([layer.post_attention_layernorm(act.middle(i)) for i in range(len(act.inputs))])
        importance = alt.channel_importance(layer.mlp, inputs)
        variants.append(
            [
                (
                    alt.attention_branch(layer, config, config.num_key_value_heads),
                    alt.ffn_branch(layer, config, width, importance),
                )
            ]
        )
    picked = [alt.Choice(config.num_key_value_heads, width)] * config.num_hidden_layers
    model = assemble(parent, config, picked, variants, [0] * config.num_hidden_layers)
    print(
        f"uniform FFN baseline: width {width} of {config.intermediate_size}, "
        f"{sum(p.numel() for p in model.parameters()) / total:.1%} of the parameters"
    )
    return save_model_dir(out_dir / "selected", model, tok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", required=True)
    ap.add_argument("--data", required=True, help="folder with sft_train.jsonl, sft_eval.jsonl, test.jsonl")
    ap.add_argument("--out", default="runs/prune-demo")
    ap.add_argument("--budget", type=float, default=0.7)
    ap.add_argument("--uptrain-steps", type=int, default=300)
    args = ap.parse_args()
    from posttrain.config.tool_recipe import load_tool_recipe
    from posttrain.pruning.recipe import PruneRecipe
    from posttrain.pruning.run import run_prune, uptrain

    data, out = Path(args.data), Path(args.out)
    recipe = load_tool_recipe(
        PruneRecipe,
        str(REPO / "recipes" / "tiny" / "prune.yaml"),
        [
            f"model={args.parent}",
            f"calibration.0.path={data / 'sft_train.jsonl'}",
            f"budget={args.budget}",
            f"uptrain.data.sources.0.path={data / 'sft_train.jsonl'}",
            f"uptrain.data.eval_sources.0.path={data / 'sft_eval.jsonl'}",
            f"uptrain.train.max_steps={args.uptrain_steps}",
        ],
    )
    test, rows, times = data / "test.jsonl", {}, {}
    rows["parent (SFT)"] = exact_match(Path(args.parent), test, out / "eval" / "parent")
    t0 = time.perf_counter()
    run_prune(recipe.model_copy(update={"uptrain": None}), str(out / "puzzle"))
    times["puzzle search"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    uptrain(recipe, out / "puzzle" / "selected", out / "puzzle")
    times["puzzle uptraining"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    uniform_ffn_baseline(recipe, out / "uniform")
    uptrain(recipe, out / "uniform" / "selected", out / "uniform")
    times["uniform build + uptraining"] = time.perf_counter() - t0
    for name, path in [
        ("puzzle, after selection", "puzzle/selected"),
        ("puzzle, after uptraining", "puzzle/uptrain/final"),
        ("uniform FFN, no training", "uniform/selected"),
        ("uniform FFN, after uptraining", "uniform/uptrain/final"),
    ]:
        rows[name] = exact_match(out / path, test, out / "eval" / path.replace("/", "-"))
    report = json.loads((out / "puzzle" / "prune_report.json").read_text())
    summary = {
        "exact_match": rows,
        "seconds": times,
        "puzzle_share": report["share"],
        "puzzle_blocks": report["blocks"],
        "budget": args.budget,
        "uptrain_steps": args.uptrain_steps,
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    for name, value in rows.items():
        print(f"{name:32s} {value:.3f}")
    print(json.dumps({"seconds": times, "blocks": report["blocks"], "share": report["share"]}, indent=1))


if __name__ == "__main__":
    main()
