"""`posttrain <command> ...`: maps sub-commands to stages and tools, nothing else.

A user's mistake (bad recipe key, missing file, invalid row, unloadable model) is printed as one
line `posttrain: error: ...` with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from posttrain.cli_help import group_commands
from posttrain.errors import RunStopped, UserError

TRAIN_STAGES = ("pretrain", "sft", "dpo", "kto", "reward", "grpo", "distill", "refuel")

# One-shot tools that live in their own folders. Each module defines `add_parsers(subparsers)`,
# which registers its sub-commands with `set_defaults(tool_run=<function(args) -> int | None>)`;
# adding a tool is one line here. Parsers import nothing heavy (torch is imported by tool_run).
TOOL_MODULES: tuple[str, ...] = (
    "posttrain.report.cli",
    "posttrain.merging.cli",
    "posttrain.quantize.cli",
    "posttrain.generation.cli",
    "posttrain.commands.cli",
    "posttrain.scoring.cli",
    "posttrain.surgery.cli",
    "posttrain.analysis.cli",
    "posttrain.synthesis.cli",
    "posttrain.curation.cli",
    "posttrain.retrieval.cli",
    "posttrain.inference.kv_eviction.cli",
    "posttrain.pruning.cli",
    "posttrain.commands.convert_cli",
)


class _OneLineParser(argparse.ArgumentParser):
    """A command-line mistake is one line too (`-h` shows the usage); sub-parsers inherit this."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse prints its message as one line, exit status 2)."""
    if not text.strip().lstrip("-").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _train_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key (dotted, typed as YAML), e.g. --set train.lr=1e-4",
    )
    p.add_argument("--output-dir", help="run directory (default: the recipe's output_dir or runs/<stage>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in the output directory from its latest checkpoint"
    )
    p.add_argument(
        "--num-processes",
        type=_positive_int,
        default=1,
        help="data-parallel processes on this "
        "machine (relaunches under torchrun; same as `accelerate launch -m posttrain`)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="posttrain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub, "pretrain", "continual pre-training on raw text")
    _train_parser(sub, "sft", "supervised fine-tuning on conversations")
    _train_parser(sub, "dpo", "preference optimisation on chosen/rejected pairs (DPO, SimPO, ...)")
    _train_parser(sub, "kto", "KTO on unpaired desirable/undesirable examples")
    _train_parser(sub, "reward", "train a reward model (Bradley-Terry, margin, scaled BT, regression)")
    _train_parser(sub, "grpo", "online RL with verifiable rewards (GRPO, RLOO)")
    _train_parser(sub, "distill", "logit distillation from a teacher (forward/reverse KL, JSD)")
    _train_parser(sub, "refuel", "multi-turn on-policy RL against a scripted user (REFUEL)")

    g = sub.add_parser("generate", help="generate from a model directory (interactive without --prompt)")
    g.add_argument("model", help="model directory, hub id, or 'tiny'")
    g.add_argument("--prompt", action="append", help="a user message (repeat for several prompts)")
    g.add_argument("--system", help="system message")
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-chat", action="store_true", help="raw text continuation (base models)")

    from posttrain.eval.cli import add_eval_parser

    add_eval_parser(sub)
    for module_name in TOOL_MODULES:
        importlib.import_module(module_name).add_parsers(sub)

    t = sub.add_parser("make-tiny", help="build the default tiny Llama model and tokenizer")
    t.add_argument("--preset", default="default", choices=["default", "test"])
    t.add_argument("--out", help="directory (default: the posttrain cache, where 'model: tiny' finds it)")

    m = sub.add_parser("merge-lora", help="merge a LoRA/DoRA adapter into its base: a plain model dir")
    m.add_argument("adapter", help="adapter directory (a run's final/ or a checkpoint)")
    m.add_argument("--out", required=True, help="output model directory")
    m.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    m.add_argument("--overwrite", action="store_true", help="replace --out even when it holds something else")

    q = sub.add_parser("quickstart", help="build, pre-train, fine-tune and evaluate the tiny model")
    q.add_argument("--output-dir", default="runs/quickstart")
    q.add_argument("--fast", action="store_true", help="a much shorter run (for smoke tests)")
    q.add_argument("--rl", action="store_true", help="add GRPO with the answer verifier after SFT (~5 min)")
    q.add_argument(
        "--model",
        default="tiny",
        choices=["tiny", "smollm2-135m-instruct"],
        help="tiny: build and train the tiny model; smollm2-135m-instruct: LoRA SFT of a real model",
    )
    group_commands(parser)
    return parser


def run_command(args: argparse.Namespace) -> int:
    if args.command in TRAIN_STAGES and args.num_processes > 1:
        from posttrain.train.distributed import in_distributed_launch, relaunch

        if not in_distributed_launch():
            return relaunch(args.num_processes, _without_num_processes(args.argv))
    if getattr(args, "tool_run", None) is not None:
        return args.tool_run(args) or 0
    if args.command in TRAIN_STAGES:
        from posttrain.config.recipe import load_recipe

        recipe = load_recipe(args.recipe, args.overrides)
        stage = importlib.import_module(f"posttrain.stages.{args.command}")
        stage.run(recipe, output_dir=args.output_dir, resume=args.resume)
    elif args.command == "eval":
        from posttrain.eval.cli import eval_command

        eval_command(args)
    elif args.command == "generate":
        from posttrain.commands.interactive import generate_command

        generate_command(args)
    elif args.command == "make-tiny":
        from posttrain.model.tiny import build_tiny, ensure_tiny

        print(build_tiny(args.out, args.preset) if args.out else ensure_tiny(args.preset))
    elif args.command == "merge-lora":
        from posttrain.model.merge_lora import merge_adapter_dir

        print(merge_adapter_dir(args.adapter, args.out, args.dtype, args.overwrite))
    elif args.command == "quickstart":
        if args.model != "tiny":
            from posttrain.commands.quickstart_real import run_real_quickstart

            run_real_quickstart(args.output_dir, fast=args.fast, rl=args.rl)
            return 0
        from posttrain.commands.quickstart import run_quickstart

        run_quickstart(args.output_dir, fast=args.fast, rl=args.rl)
    return 0


def _without_num_processes(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            out.append(arg)
    return out


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # CPU kernel notices on import
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # per-file load/save bars; ours shows the run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    _quiet_libraries()
    try:
        return run_command(args)
    except UserError as err:
        _say(f"posttrain: error: {err}")
        return 2
    except RunStopped as stop:
        _say(f"posttrain: {stop}")
        return stop.status
    except KeyboardInterrupt:
        _say("posttrain: interrupted")
        return 130


def _say(line: str) -> None:
    """The final line on stderr, from the main process only (torchrun's RANK 0, or a single
    process): with --num-processes every process stops, or meets the same data error, alike and
    would print the same line. The exit status stays every process's own."""
    if os.environ.get("RANK", "0") == "0":
        print(line, file=sys.stderr)
