"""Issue 30 item 5: with data.on_error: skip a line that is not JSON is skipped (and counted) by
every reader that re-reads the raw rows after validation: sample, grpo, dpo (rebel) and kto."""

import json
from types import SimpleNamespace

import pytest

from posttrain.config.recipe import load_recipe
from posttrain.data.preference import tokenize_pairs
from posttrain.data.sources import load_records
from posttrain.data.unpaired import read_unpaired
from posttrain.generation.sample import load_prompt_items
from posttrain.model.load import load_tokenizer

BROKEN = '{"prompt": "cut off here\n'


def _file(tmp_path, rows, name="rows.jsonl"):
    path = tmp_path / name
    lines = [json.dumps(rows[0]), BROKEN.rstrip("\n"), *map(json.dumps, rows[1:])]
    path.write_text("\n".join(lines) + "\n")
    return path


PROMPTS = [{"prompt": "What is 2+2?", "reference": "4"}, {"prompt": "What is 3+3?", "reference": "6"}]


def test_sample_skips_the_line(tmp_path):
    items, skipped = load_prompt_items(str(_file(tmp_path, PROMPTS)), "skip")
    assert [i["row"] for i in items] == [1, 3] and skipped == 1


def test_grpo_skips_the_line(tmp_path, tiny_dir):
    from transformers import AutoModelForCausalLM

    from posttrain.stages.grpo import load_prompts

    path = _file(tmp_path, PROMPTS)
    recipe = load_recipe(
        None, [f"model={tiny_dir}", f"data.sources=[{path}]", "data.on_error=skip", "grpo.max_new_tokens=8"]
    )
    ctx = SimpleNamespace(
        recipe=recipe, tokenizer=load_tokenizer(str(tiny_dir)), model=AutoModelForCausalLM.from_pretrained(tiny_dir)
    )
    with pytest.warns(UserWarning, match="skipped 1"):
        prompts, samples = load_prompts(ctx)
    assert [s["reference"] for s in samples] == ["4", "6"]


def test_rebel_pairs_skip_the_line(tmp_path, tiny_dir):
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "chosen_score": 1.0, "rejected_score": 0.0},
        {"prompt": "3+3?", "chosen": "6", "rejected": "7", "chosen_score": 0.9, "rejected_score": 0.1},
    ]
    loaded = load_records(_file(tmp_path, rows), "preference", "skip")
    pairs = tokenize_pairs(load_tokenizer(str(tiny_dir)), loaded, 256, "skip", with_scores=True)
    assert len(pairs) == 2


def test_kto_skips_the_line(tmp_path):
    rows = [{"prompt": "2+2?", "completion": "4", "label": True}, {"prompt": "3+3?", "completion": "7", "label": False}]
    with pytest.warns(UserWarning, match="skipped 1"):
        examples = read_unpaired(str(_file(tmp_path, rows)), "skip")
    assert [e.desirable for e in examples] == [True, False] and [e.row for e in examples] == [1, 3]
