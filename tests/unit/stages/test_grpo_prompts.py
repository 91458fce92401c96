"""`posttrain grpo`'s prompt loading honours data.on_error: a prompt that leaves no room for
grpo.max_new_tokens is an error naming its row, or skipped and counted with on_error: skip."""

import json
from types import SimpleNamespace

import pytest

from posttrain.config.recipe import Recipe
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer
from posttrain.stages.grpo import load_prompts


def _ctx(tmp_path, tiny_dir, on_error):
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt": "Is 4 even?", "reference": "even"},
        {"prompt": "Is 5 even? " * 40, "reference": "odd"},
        {"prompt": "Is 7 even?", "reference": "odd"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe.model_validate(
        {"data": {"sources": [str(path)], "max_length": 96, "on_error": on_error}, "grpo": {"max_new_tokens": 32}}
    )
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=256))
    return SimpleNamespace(recipe=recipe, tokenizer=load_tokenizer(str(tiny_dir)), model=model)


def test_prompt_without_room_is_named_or_skipped(tmp_path, tiny_dir):
    with pytest.raises(UserError, match=r"prompts.jsonl: row 2: field 'prompt': \d+ tokens leave no room"):
        load_prompts(_ctx(tmp_path, tiny_dir, "fail"))
    with pytest.warns(UserWarning, match=r"skipped 1 rows \(first: row 2 field 'prompt'"):
        prompts, samples = load_prompts(_ctx(tmp_path, tiny_dir, "skip"))
    assert [s["reference"] for s in samples] == ["even", "odd"] and len(prompts) == 2
