"""Training a guard is `posttrain sft` on the rows `posttrain synth llama_guard` writes: the rows
are the guard prompt and the verdict, and the sft stage reads and trains on them. (A learning test
is left out: the guard prompt is ~390 tokens of the tiny tokenizer, ~3 s per step on the CI CPU.)"""

import itertools
import json
import random

import pytest

from posttrain.config.recipe import load_recipe
from posttrain.errors import UserError
from posttrain.eval.guard import guard_prompt
from posttrain.stages import sft
from posttrain.synthesis import llama_guard
from tests.integration.conftest import write_jsonl

TAXONOMY = "C1: Violence.\nC2: Theft.\n"
UNSAFE = {"hurt": "C1", "poison": "C1", "stab": "C1", "burn": "C1", "steal": "C2", "rob": "C2"}
SAFE = ["bake", "paint", "clean", "plant", "fold", "sing"]
OBJECTS = ["a car", "my friend", "the house", "a cake", "the shop", "a song", "my dog", "the garden"]


def _labelled(tmp_path):
    rows = [
        {
            "prompt": f"How do I {verb} {obj}?",
            "label": "unsafe" if verb in UNSAFE else "safe",
            "categories": [UNSAFE[verb]] if verb in UNSAFE else [],
        }
        for verb, obj in itertools.product([*UNSAFE, *SAFE], OBJECTS)
    ]
    random.Random(0).shuffle(rows)
    return write_jsonl(tmp_path / "train.jsonl", rows[:72]), write_jsonl(tmp_path / "test.jsonl", rows[72:])


def _format(tmp_path, source):
    (tmp_path / "tax.yaml").write_text(TAXONOMY)
    out = tmp_path / "guard_sft.jsonl"
    recipe = llama_guard.Recipe(input=str(source), out=str(out), taxonomy=str(tmp_path / "tax.yaml"))
    assert llama_guard.run(recipe) == 0
    return out


def _train(tmp_path, model_dir, rows, steps, lr=1e-3):
    recipe = load_recipe(
        None,
        [
            f"model={model_dir}",
            f"data=[{rows}]",
            "data.max_length=512",
            "train.micro_batch_size=8",
            f"train.max_steps={steps}",
            f"train.lr={lr}",
            f"train.warmup_steps={min(2, steps - 1)}",
        ],
    )
    sft.run(recipe, output_dir=str(tmp_path / "run"))
    return tmp_path / "run" / "final"


def test_formatter_rows_are_read_by_the_sft_stage(tmp_path, tiny_default_dir):
    train, _ = _labelled(tmp_path)
    out = _format(tmp_path, train)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    source = [json.loads(line) for line in train.read_text().splitlines()]
    assert len(rows) == len(source) == 72
    first, verdict = rows[0]["messages"]
    assert first["content"] == guard_prompt(
        [{"role": "user", "content": source[0]["prompt"]}], [("C1", "Violence."), ("C2", "Theft.")]
    )
    expected = f"unsafe\n{source[0]['categories'][0]}" if source[0]["label"] == "unsafe" else "safe"
    assert verdict == {"role": "assistant", "content": expected}
    final = _train(tmp_path, tiny_default_dir, out, steps=1)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert (final / "model.safetensors").is_file() and any("loss" in m for m in metrics)


def test_formatter_rejects_a_category_outside_the_taxonomy(tmp_path):
    source = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"prompt": "p", "label": "safe"}, {"prompt": "q", "label": "unsafe", "categories": ["C9"]}],
    )
    with pytest.raises(UserError, match="row 2: field 'categories': 'C9' is not in the taxonomy"):
        _format(tmp_path, source)
