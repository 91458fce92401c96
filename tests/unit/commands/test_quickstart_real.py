"""`posttrain quickstart --model smollm2-135m-instruct`: its recipes load and validate, and bad
use fails in one line before any model work. The run itself is in docs/real_model.md."""

import pytest

from posttrain.cli import main
from posttrain.commands.quickstart_real import ANSWER_TOKENS, _recipe, run_real_quickstart
from posttrain.errors import UserError


def test_recipes_validate_with_a_lora_adapter_and_dropout_0():
    sft = _recipe("smollm2-lora-sft", [])
    grpo = _recipe("smollm2-grpo", [])
    assert sft.model.path == "smollm2-135m-instruct" and sft.adapter.kind == "lora"
    assert sft.adapter.dropout == 0.0 and grpo.adapter.kind == "lora"
    assert grpo.grpo.max_new_tokens > 64 and ANSWER_TOKENS > 64  # the tiny model's budget cut answers


def test_a_non_empty_output_dir_is_refused_first(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(UserError, match="is not empty"):
        run_real_quickstart(str(tmp_path))


def test_unknown_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["quickstart", "--model", "gpt-9"])
    assert stopped.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
