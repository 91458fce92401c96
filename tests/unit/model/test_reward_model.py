"""The reward model scores a padded batch exactly as each sequence alone, keeps or resets an initial
reward model's head as asked, and trains/loads as a LoRA adapter with its head."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from posttrain.config.recipe import AdapterConfig, ModelConfig, RewardSection
from posttrain.data.preference import tokenize_completion
from posttrain.data.reward import pad_right
from posttrain.errors import UserError
from posttrain.model.load import load_tokenizer
from posttrain.model.reward_model import (
    RewardScores,
    head_labels,
    load_reward_model,
    load_reward_model_dir,
    score_head,
    score_sequences,
)

ANSWERS = ["even", "odd", "It is an even number, because it ends in 4.", "4", "odd, surely odd"]


def _sequences(tokenizer):
    prompt = [{"role": "user", "content": "Is 314 even or odd?"}]
    return [tokenize_completion(tokenizer, prompt, [{"role": "assistant", "content": a}]).input_ids for a in ANSWERS]


def _reward_model(path, labels, **kwargs):
    tok = load_tokenizer(str(path))
    return load_reward_model(ModelConfig(path=str(path)), labels, tok.pad_token_id, **kwargs), tok


def test_batch_scores_equal_a_direct_forward_on_each_sequence_alone(tiny_dir, tmp_path):
    model, tok = _reward_model(tiny_dir, ["helpfulness", "correctness", "verbosity"])
    model.save_pretrained(tmp_path / "rm")
    direct = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    sequences = _sequences(tok)
    assert len({len(s) for s in sequences}) > 2  # the batch really is padded
    with torch.no_grad():
        alone = torch.cat([direct(input_ids=torch.tensor([s])).logits for s in sequences])
        wrapped = RewardScores(model.eval())(pad_right(sequences, tok.pad_token_id))
    batched = score_sequences(model, sequences, tok.pad_token_id, batch_size=3)
    assert alone.shape == (len(ANSWERS), 3)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wrapped, alone, atol=1e-5, rtol=1e-5)
    assert direct.config.pad_token_id == tok.pad_token_id
    assert direct.config.id2label == {0: "helpfulness", 1: "correctness", 2: "verbosity"}


def test_head_of_an_initial_reward_model_is_kept_unless_reset_or_resized(tiny_dir, tmp_path):
    regression, tok = _reward_model(tiny_dir, ["helpfulness"], seed=1)
    regression.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    saved = score_head(regression).weight
    kept, _ = _reward_model(tmp_path / "rm", ["reward"])
    reset, _ = _reward_model(tmp_path / "rm", ["reward"], reset_head=True)
    resized, _ = _reward_model(tmp_path / "rm", ["helpfulness", "correctness"])
    torch.testing.assert_close(score_head(kept).weight, saved)
    assert not torch.allclose(score_head(reset).weight, saved)
    assert score_head(reset).weight.std() < 0.1  # N(0, initializer_range^2), as transformers does
    assert score_head(resized).weight.shape == (2, saved.shape[1])
    torch.testing.assert_close(kept.model.embed_tokens.weight, regression.model.embed_tokens.weight)


def test_head_labels_follow_the_loss_and_the_initial_model():
    assert head_labels(RewardSection(), pairwise=True, init_labels=None) == ["reward"]
    assert head_labels(RewardSection(attributes=["a", "b"]), pairwise=False, init_labels=None) == ["a", "b"]
    chosen = RewardSection(score_attribute="b")
    assert head_labels(chosen, pairwise=True, init_labels=["a", "b"]) == ["a", "b"]
    with pytest.raises(UserError, match="regression needs reward.attributes"):
        head_labels(RewardSection(loss="regression"), pairwise=False, init_labels=None)
    with pytest.raises(UserError, match="needs reward.score_attribute"):
        head_labels(RewardSection(attributes=["a", "b"]), pairwise=True, init_labels=None)
    with pytest.raises(UserError, match="'c' is not an output"):
        head_labels(RewardSection(score_attribute="c"), pairwise=True, init_labels=["a", "b"])


def test_lora_reward_model_trains_its_head_and_loads_back_for_scoring(tiny_dir, tmp_path):
    lora = AdapterConfig(kind="lora", r=4)
    model, tok = _reward_model(tiny_dir, ["helpfulness", "verbosity"], adapter=lora)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("score" in n for n in trainable)
    with torch.no_grad():
        model.base_model.model.score.modules_to_save["default"].weight.normal_()  # a trained head
    model.save_pretrained(tmp_path / "adapter")
    tok.save_pretrained(tmp_path / "adapter")
    loaded, _ = load_reward_model_dir(str(tmp_path / "adapter"))
    sequences = _sequences(tok)
    expected = score_sequences(model.eval(), sequences, tok.pad_token_id, batch_size=8)
    torch.testing.assert_close(score_sequences(loaded, sequences, tok.pad_token_id, 8), expected, atol=1e-5, rtol=1e-5)
    from posttrain.model.merge_lora import (
        merge_adapter_dir,  # posttrain merge-lora keeps the head
    )

    merged = AutoModelForSequenceClassification.from_pretrained(
        merge_adapter_dir(tmp_path / "adapter", tmp_path / "merged")
    )
    assert merged.config.num_labels == 2 and not (tmp_path / "merged" / "adapter_config.json").exists()
    torch.testing.assert_close(
        score_sequences(merged.eval(), sequences, tok.pad_token_id, 8), expected, atol=1e-5, rtol=1e-5
    )


def test_an_unloadable_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot load model"):
        load_reward_model(ModelConfig(path=str(tmp_path / "missing")), ["reward"], 0)


def test_a_body_that_does_not_match_its_config_is_an_error_not_reinitialised(tiny_dir, tmp_path):
    """Only the score head may change size (re-initialised); a mismatched body tensor once was
    silently re-initialised by ignore_mismatched_sizes."""
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    config["vocab_size"] += 8
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError) as err:
        _reward_model(bad, ["helpfulness", "correctness"])
    vocab = config["vocab_size"]
    assert str(err.value) == (
        f"cannot load model '{bad}': the weights do not match config.json "
        f"(model.embed_tokens.weight is [{vocab - 8}, {config['hidden_size']}] in the "
        f"weights, [{vocab}, {config['hidden_size']}] by config.json; 1 tensor differs)"
    )
