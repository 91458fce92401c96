"""Every shipped recipe stays usable from a fresh clone.

- recipes/llama3-8b/ (they need a GPU and the weights) and every recipe under recipes/ are
  validated by their schema.
- The slow test runs every recipe under recipes/tiny/ from an empty directory, in dependency order
  (data -> pretrain -> sft -> the rest), each for a couple of steps (`--set` shortens them), with
  only the commands that the recipes' headers name to make their inputs. A recipe that gains an
  input nothing makes, or a key the schema dropped, fails here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.config.recipe import load_recipe
from posttrain.config.tool_recipe import load_tool_recipe
from posttrain.merging.recipe import CycleQDRecipe, MergeRecipe
from posttrain.pruning.recipe import PruneRecipe

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "recipes" / "tiny"
TOOL_SCHEMAS = {"merge/cycleqd.yaml": CycleQDRecipe, "prune.yaml": PruneRecipe}


def _schema(path: Path):
    name = path.relative_to(path.parents[1] if path.parent.name == "merge" else path.parent).as_posix()
    if name in TOOL_SCHEMAS:
        return TOOL_SCHEMAS[name]
    if path.parent.name == "merge":
        return MergeRecipe
    if name == "iterate.yaml":
        from posttrain.commands.iterate import IterateRecipe

        return IterateRecipe
    return None  # a training recipe


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").rglob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_validates(path):
    schema = _schema(path)
    if schema is None:
        recipe = load_recipe(path)
        assert recipe.output_dir, f"{path}: name an output_dir so the next recipe can find the run"
    else:
        load_tool_recipe(schema, str(path))


def test_a_broken_recipe_fails_validation(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text((ROOT / "recipes" / "llama3-8b" / "sft.yaml").read_text().replace("  lr:", "  lrr:"))
    with pytest.raises(Exception, match="lrr"):
        load_recipe(bad)


TRAIN = [
    "train.max_steps=2",
    "train.micro_batch_size=2",
    "train.grad_accum_steps=1",
    "train.warmup_steps=0",
    "train.eval_every=2",
    "train.save_every=2",
    "log.tensorboard=false",
]
EVAL = ["eval.limit=2", "eval.max_new_tokens=8"]
NO_LOSS_EVAL = ["data.eval_sources=[]", "data.eval_fraction=0"]  # a held-out loss pass costs minutes here
ROLLOUTS = ["grpo.prompts_per_step=2", "grpo.group_size=2", "grpo.max_new_tokens=8"]


def _run(*argv: str, sets: list[str] = ()) -> None:
    args = [*argv, *(a for s in sets for a in ("--set", s))]
    start = time.perf_counter()
    assert main(args) == 0, args
    print(f"{time.perf_counter() - start:6.1f} s  posttrain {' '.join(argv)}")  # shown with -s: where the time goes


def _head(path: str, rows: int) -> str:
    """A copy of the first rows of a data file, beside it."""
    head = Path(path).with_name(Path(path).stem + "_head.jsonl")
    head.write_text("".join(Path(path).read_text().splitlines(keepends=True)[:rows]))
    return str(head)


def _recipe(name: str) -> str:
    return str(TINY / name)


def _train(stage: str, name: str, *extra: str, sets: list[str] = ()) -> None:
    _run(stage, _recipe(name), *extra, sets=[*TRAIN, *sets])


@pytest.mark.slow
def test_every_tiny_recipe_runs_in_dependency_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipes' relative paths (data/, runs/) resolve here, as in a clone
    short_data = ["data.max_length=64", *NO_LOSS_EVAL]
    # data: the commands the headers name
    _run("synth", "arithmetic", "--out", "data/arithmetic")
    _run("synth", "toy-tasks", "--out", "data/toy")
    # the first rows only where a stage reads (tokenises, scores) its whole file before step 1
    sft_head = ["data.sources.0.path=" + _head("data/arithmetic/sft_train.jsonl", 64)]
    pairs_head = ["data.sources.0.path=" + _head("data/toy/parity_pairs.jsonl", 16)]
    # pretrain -> sft -> the experts
    _train("pretrain", "pretrain.yaml", sets=short_data)
    _train(
        "sft",
        "sft.yaml",
        sets=[*EVAL, *NO_LOSS_EVAL, *sft_head, "train.max_steps=3", "train.save_every=1", "train.keep_last=3"],
    )
    for name in ("sft_parity.yaml", "sft_size.yaml", "sft_colour.yaml"):
        _train("sft", name, sets=EVAL)
    # the rest, from those runs
    _train("dpo", "dpo.yaml", sets=[*NO_LOSS_EVAL, *pairs_head])
    _train("reward", "reward.yaml", sets=[*NO_LOSS_EVAL, *pairs_head])
    _train("distill", "distill.yaml", sets=[*EVAL, *NO_LOSS_EVAL, *sft_head])
    _train("grpo", "grpo.yaml", sets=[*EVAL, *ROLLOUTS])
    _train("grpo", "ppo.yaml", sets=[*EVAL, *ROLLOUTS])
    _train("refuel", "refuel.yaml", sets=["grpo.prompts_per_step=2", "grpo.max_new_tokens=4"])
    _run(
        "iterate",
        _recipe("iterate.yaml"),
        sets=[
            "model=runs/tiny-sft/final",
            "prompts=data/arithmetic/rl_prompts.jsonl",
            "rounds=1",
            "prompts_per_round=4",
            "sample.n=2",
            "sample.max_new_tokens=8",
            "sample.temperature=1.0",
            # the reward model above: scores that differ, where a 3-step SFT model's answers all tie under `math`
            'score.scorers=["reward_model:path=runs/tiny-reward/final"]',
            "eval.data=data/toy/parity_test.jsonl",
            "eval.max_new_tokens=4",
            "dpo.overrides=[train.max_steps=1, train.micro_batch_size=2, log.tensorboard=false]",
        ],
    )
    head = sft_head[0].split("=", 1)[1]
    _run(
        "prune",
        _recipe("prune.yaml"),
        sets=[
            f"calibration.0.path={head}",
            "calibration_tokens=1024",
            "sequence_length=32",
            "bld_steps=1",
            "batch_size=8",
            "alternatives.attention=[kv1]",
            "alternatives.ffn=[ffn50]",
            "budget=0.9",
            f"uptrain.data.sources.0.path={head}",
            "uptrain.data.eval_sources=[]",
            "uptrain.distill.top_k=null",
            "uptrain.train.max_steps=2",
            "uptrain.train.micro_batch_size=2",
            "uptrain.train.warmup_steps=0",
        ],
    )
    # merging: the headers' extra run (the base pre-trained further), then every merge recipe
    _train(
        "pretrain",
        "pretrain.yaml",
        "--output-dir",
        "runs/tiny-cpt-more",
        sets=[*short_data, "model=runs/tiny-pretrain/final", "seed=1"],
    )
    for name in ("ties.yaml", "instruction_residual.yaml", "checkpoint_soup.yaml"):
        _run("merge", _recipe(f"merge/{name}"))
    _run("cycleqd", _recipe("merge/cycleqd.yaml"), sets=["generations=1", "limit=2"])
    # KV-eviction models: the data and the test-size model the header names
    _run("kv", "make-data", "--out", "data/kv-needle")
    _run("make-tiny", "--preset", "test", "--out", "data/kv-needle/tiny-test")
    _train("pretrain", "kv-needle.yaml", sets=NO_LOSS_EVAL)
    _train("sft", "kv-needle-sft.yaml", sets=NO_LOSS_EVAL)
    # self-evaluation SFT: bench/adaptive_compute.sh's first commands, on 4 prompts
    Path("runs/adaptive").mkdir(parents=True)
    Path("runs/adaptive/prompts.jsonl").write_text(
        "".join(Path("data/arithmetic/rl_prompts.jsonl").read_text().splitlines(keepends=True)[:4])
    )
    Path("runs/adaptive/sft_replay.jsonl").write_text(
        "".join(Path("data/arithmetic/sft_train.jsonl").read_text().splitlines(keepends=True)[:16])
    )
    _run(
        "sample",
        "runs/tiny-sft/final",
        "--prompts",
        "runs/adaptive/prompts.jsonl",
        "--n",
        "2",
        "--temperature",
        "0.8",
        "--max-new-tokens",
        "8",
        "--out",
        "runs/adaptive/samples.jsonl",
    )
    _run("score", "--data", "runs/adaptive/samples.jsonl", "--scorer", "math", "--out", "runs/adaptive/scored.jsonl")
    _run(
        "synth", "self_eval", "--set", "input=runs/adaptive/scored.jsonl", "--out", "runs/adaptive/self_eval_sft.jsonl"
    )
    _train("sft", "self_eval_sft.yaml", sets=NO_LOSS_EVAL)

    for path in TINY.rglob("*.yaml"):  # every training recipe left its final model where its output_dir says
        if _schema(path) is None:
            assert (Path(load_recipe(path).output_dir) / "final" / "config.json").is_file(), path
    for merged in ("merged-ties", "cpt-plus-residual", "tiny-sft-soup"):
        assert (Path("runs") / merged / "config.json").is_file(), merged
    assert (Path("runs") / "cycleqd" / "cycleqd.json").is_file()
    assert (Path("runs") / "tiny-prune" / "prune_report.json").is_file()
    assert Path("runs/tiny-iterate/round-1").is_dir()
    covered = {
        "pretrain",
        "sft",
        "sft_parity",
        "sft_size",
        "sft_colour",
        "dpo",
        "reward",
        "distill",
        "grpo",
        "ppo",
        "refuel",
        "iterate",
        "prune",
        "kv-needle",
        "kv-needle-sft",
        "self_eval_sft",
        "merge/ties",
        "merge/instruction_residual",
        "merge/checkpoint_soup",
        "merge/cycleqd",
    }
    shipped = {p.relative_to(TINY).with_suffix("").as_posix() for p in TINY.rglob("*.yaml")}
    assert shipped == covered, f"a tiny recipe is not run here: {sorted(shipped ^ covered)}"
