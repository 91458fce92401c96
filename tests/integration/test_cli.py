"""The CLI end to end on tiny recipes: pre-train, then SFT from its result, then generate."""

import json

from transformers import AutoModelForCausalLM

from tests.integration.conftest import run_cli


def test_pretrain_then_sft_then_generate(tmp_path, tiny_dir, small_data):
    pt, ft = tmp_path / "pt", tmp_path / "ft"
    recipe = tmp_path / "pretrain.yaml"
    recipe.write_text(f"""
model: {tiny_dir}
data:
  sources: [{{path: {small_data["pretrain"]}, kind: text}}]
  eval_fraction: 0.1
  max_length: 64
train: {{micro_batch_size: 4, max_steps: 4, lr: 1.0e-3, save_every: 2, eval_every: 2, keep_last: 1}}
""")
    run_cli("pretrain", recipe, "--output-dir", pt, "--set", "train.grad_accum_steps=2")
    assert (pt / "config.yaml").is_file() and (pt / "tb").is_dir()
    assert [p.name for p in (pt / "checkpoints").iterdir()] == ["step-00000002"]  # keep_last 1
    lines = [json.loads(line) for line in (pt / "metrics.jsonl").read_text().splitlines()]
    train_lines = [m for m in lines if "loss" in m]
    assert [m["step"] for m in train_lines] == [1, 2, 3, 4]
    assert {"step", "loss", "lr", "tokens_seen", "grad_norm"} <= set(train_lines[0])
    assert train_lines[-1]["tokens_seen"] == 4 * 4 * 2 * 64  # packed rows are full
    assert any("eval_loss" in m for m in lines)
    AutoModelForCausalLM.from_pretrained(pt / "final")

    run_cli("sft", _sft_recipe(tmp_path, pt / "final", small_data), "--output-dir", ft)
    lines = [json.loads(line) for line in (ft / "metrics.jsonl").read_text().splitlines()]
    assert any("exact_match" in m for m in lines)
    out = run_cli("generate", ft / "final", "--prompt", "What is 12 + 30?", "--max-new-tokens", "8")
    assert out.stdout.startswith(">>> What is 12 + 30?")
    chat = run_cli("generate", ft / "final", "--max-new-tokens", "4", stdin="What is 1 + 2?\nAnd 2 + 2?\n\n")
    assert chat.stdout.count("assistant> ") == 2


def _sft_recipe(tmp_path, model, data):
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(f"""
model: {model}
data:
  sources: [{data["sft"]}]
  eval_sources: [{data["sft_eval"]}]
  pack: true
  max_length: 128
train: {{micro_batch_size: 4, max_steps: 3, lr: 1.0e-3}}
eval: {{task: exact_match, data: {data["test"]}, limit: 8, max_new_tokens: 8}}
""")
    return recipe
