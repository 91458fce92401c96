"""LOGO through `posttrain dpo`: several rejected responses per prompt, synthetic long-context
positions, and the one-line errors for data other objectives cannot take."""

import json

import pytest

from tests.integration.conftest import run_cli, write_jsonl


def _rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        wrong = [f"{i + 1}", f"{i + 2}", "I do not know"][: 1 + i % 3]  # M = 1, 2 or 3 per prompt
        rows.append({"prompt": f"What number comes after {i - 1}?", "chosen": f"{i}", "rejected": wrong})
    return rows


def _recipe(tmp_path):
    path = tmp_path / "logo.yaml"
    path.write_text("preference: {loss: logo, logo_sft_weight: 0.1}\n")
    return path


def test_logo_trains_through_posttrain_dpo_with_synthetic_positions(tmp_path, tiny_dir):
    data = write_jsonl(tmp_path / "pairs.jsonl", _rows(12))
    out = tmp_path / "run"
    run_cli(
        "dpo",
        _recipe(tmp_path),
        "--set",
        f"model={tiny_dir}",
        "--set",
        f"data=[{data}]",
        "--set",
        "preference.loss=logo",
        "--set",
        "preference.beta=2.0",
        "--set",
        "preference.gamma=0.5",
        "--set",
        "preference.position_synthesis_length=4096",
        "--set",
        "preference.position_chunks=3",
        "--set",
        "train.max_steps=3",
        "--set",
        "train.micro_batch_size=4",
        "--set",
        "data.eval_fraction=0.25",
        "--output-dir",
        out,
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "num_rejected" in r]
    assert len(train) == 3 and all(1.0 <= r["num_rejected"] <= 3.0 for r in train)
    assert all(r["loss"] > 0 and r["nll"] > 0 for r in train)
    assert (out / "final" / "model.safetensors").is_file()


def test_several_rejected_with_a_pairwise_loss_is_a_user_error(tmp_path, tiny_dir):
    from posttrain.config.recipe import load_recipe
    from posttrain.errors import UserError
    from posttrain.stages import dpo

    data = write_jsonl(tmp_path / "pairs.jsonl", _rows(6))
    recipe = load_recipe(None, [f"model={tiny_dir}", f"data=[{data}]", "preference.loss=simpo", "train.max_steps=1"])
    with pytest.raises(UserError, match="preference.loss 'simpo' takes one rejected response per prompt"):
        dpo.run(recipe, output_dir=str(tmp_path / "run"))


def test_synthetic_positions_reach_the_model_and_need_the_mask(tiny_dir):
    """Jumps in position ids change the log-probs only through RoPE when an attention mask is
    given; without one, transformers would cut attention at each jump (a packed-row boundary)."""
    import torch
    from transformers import AutoModelForCausalLM

    from posttrain.model.logprobs import token_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    ids = torch.arange(5, 17).unsqueeze(0)
    labels, mask = ids.clone(), torch.ones_like(ids)
    plain = token_logprobs(model, ids, labels)
    assert torch.allclose(token_logprobs(model, ids, labels, torch.arange(12).unsqueeze(0), mask), plain, atol=1e-5)
    jumped = torch.tensor([[0, 1, 2, 3, 500, 501, 502, 503, 900, 901, 902, 903]])
    with_mask = token_logprobs(model, ids, labels, jumped, mask)
    without_mask = token_logprobs(model, ids, labels, jumped)
    assert not torch.allclose(with_mask, plain, atol=1e-4)
    assert not torch.allclose(with_mask, without_mask, atol=1e-4)
