"""Parsers of `posttrain score` and `posttrain reward-eval` (the work is imported when they run)."""

from __future__ import annotations

import argparse

from posttrain.errors import UserError

DEFAULT_EVAL_ROOT = "runs/reward-eval"


def add_parsers(subparsers) -> None:
    from posttrain.scoring.pairs import PAIR_MODES

    e = subparsers.add_parser(
        "reward-eval", help="pairwise accuracy of a reward model or any named scorer per category (RewardBench style)"
    )
    e.add_argument("model", nargs="?", help="reward model directory or LoRA reward adapter (or give --scorer)")
    _common(e)
    e.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="NAME[:k=v,...]",
        help="instead of a reward model: a scorer by name (density_ratio, judge, a verifier, "
        "module:function) with options, as `posttrain score --scorer` (repeatable: weighted total)",
    )
    e.add_argument("--output-dir", help=f"where results.json goes (default {DEFAULT_EVAL_ROOT}/<model>)")
    e.set_defaults(tool_run=_reward_eval)
    s = subparsers.add_parser(
        "score",
        help="score completions with named scorers (verifiers, reward model, "
        "judge, density ratio); preference pairs; rejection-sampling SFT data",
    )
    s.add_argument("model", nargs="?", help="a reward model: score with it and write best-vs-worst pairs to --out")
    _common(s)
    s.add_argument("--out", required=True, help="scored rows (.jsonl); with RM_DIR: the pairs")
    s.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="NAME[:k=v,...]",
        help="a scorer by name with options and weight=/label=/verifier= (repeatable)",
    )
    s.add_argument("--pairs", choices=PAIR_MODES, help="write preference pairs (default file: OUT.pairs.jsonl)")
    s.add_argument("--margin", type=float, help="--pairs margin: the least score difference of a pair")
    s.add_argument("--pairs-out", help="where the pairs go")
    s.add_argument("--sft-out", help="write rejection-sampled SFT rows {messages} here")
    s.add_argument(
        "--sft-mode",
        choices=["verified", "majority"],
        default="verified",
        help="keep the completions a verifier accepts, or those agreeing with the majority answer",
    )
    s.add_argument("--sft-per-prompt", type=int, help="keep at most K completions per prompt")
    s.add_argument("--shard", help="I/K: score only block I of K of the rows")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(tool_run=_score)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data file (.jsonl, .json, .parquet, .csv) or dataset dir")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--attribute", help="multi-attribute reward model: the output that scores (default: first)")
    p.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], help="load the weights in this dtype (default: as saved)"
    )


def _reward_eval(args: argparse.Namespace) -> None:
    if args.scorer:
        from posttrain.scoring.scorer_eval import scorer_reward_eval

        if args.model:
            raise UserError("reward-eval takes a reward model directory or --scorer, not both")
        scorer_reward_eval(args.data, args.scorer, args.output_dir)
        return
    if not args.model:
        raise UserError("reward-eval needs a reward model directory or --scorer NAME[:k=v,...]")
    from posttrain.scoring.reward_eval import reward_eval_command

    reward_eval_command(args.model, args.data, args.batch_size, args.output_dir, args.attribute, args.dtype)


def _score(args: argparse.Namespace) -> int:
    from posttrain.scoring.score import score_command

    return score_command(args)
