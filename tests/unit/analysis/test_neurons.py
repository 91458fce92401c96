"""Neuron projection against W_U @ (g * W_down[:, j]) computed directly on the tiny model; the
clamp hook sets the MLP activation as asked (and only inside its block); the CLI end to end."""

import json

import pytest
import torch

from posttrain.analysis.cli import parse_clamp, word_diff
from posttrain.analysis.neurons import (
    clamped,
    neuron_logits,
    neurons_for_token,
    top_tokens,
)
from posttrain.errors import UserError


@pytest.fixture(scope="module")
def model(tiny_dir):
    from posttrain.model.inference import load_model_and_tokenizer

    loaded, _ = load_model_and_tokenizer(str(tiny_dir))
    with torch.no_grad():  # an untrained norm weight is all ones: make g matter
        loaded.model.norm.weight.uniform_(0.5, 1.5)
    return loaded


def test_projection_equals_the_direct_computation(model):
    layer, j = 1, 5
    w_down = model.model.layers[layer].mlp.down_proj.weight  # (d_model, d_ff)
    g, w_u = model.model.norm.weight, model.lm_head.weight
    direct = w_u @ (g * w_down[:, j])
    got = neuron_logits(model, layer, [j, 7])
    assert torch.allclose(got[:, 0], direct, atol=1e-5)
    ids = torch.topk(direct, 3).indices.tolist()
    assert [t for t, _ in top_tokens(model, layer, [j], 3)[0]] == ids


def test_neurons_for_a_token_are_the_best_over_all_layers(model):
    token = 42
    everything = [
        (l, j, (model.lm_head.weight[token] @ (model.model.norm.weight * block.mlp.down_proj.weight[:, j])).item())
        for l, block in enumerate(model.model.layers)
        for j in range(block.mlp.down_proj.weight.shape[1])
    ]
    best = max(everything, key=lambda item: item[2])
    found = neurons_for_token(model, token, 4)
    assert found[0][:2] == best[:2] and found[0][2] == pytest.approx(best[2], abs=1e-5)
    assert [v for *_, v in found] == sorted([v for *_, v in found], reverse=True)


def test_clamp_sets_the_activation_and_is_removed(model):
    seen = []
    down = model.model.layers[0].mlp.down_proj
    handle = down.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].detach().clone()))
    ids = torch.tensor([[1, 20, 30, 40]])
    try:
        with torch.no_grad():
            base = model(input_ids=ids).logits
            with clamped(model, 0, {3: 8.0, 9: -2.0}):
                changed = model(input_ids=ids).logits
            again = model(input_ids=ids).logits
    finally:
        handle.remove()
    assert (seen[1][..., 3] == 8.0).all() and (seen[1][..., 9] == -2.0).all()
    assert torch.equal(seen[1][..., 10:], seen[0][..., 10:])  # other neurons untouched
    assert not torch.allclose(base, changed) and torch.equal(base, again)
    with pytest.raises(UserError, match="neuron 999"):
        with clamped(model, 0, {999: 1.0}):
            pass


def test_parse_clamp_and_word_diff():
    assert parse_clamp("3,17=8.5") == {3: 8.5, 17: 8.5}
    with pytest.raises(UserError):
        parse_clamp("3,17")
    assert word_diff("the cat sat", "the dog sat down") == "the [-cat-] {+dog+} sat {+down+}"


def test_cli_report(tiny_dir, tmp_path, capsys):
    from posttrain.cli import main

    out = tmp_path / "report.json"
    assert (
        main(
            [
                "analyze",
                "neurons",
                str(tiny_dir),
                "--top",
                "3",
                "--layer",
                "1",
                "--tokens",
                "a",
                "--neurons",
                "0,2",
                "--clamp",
                "0,1,2,3=20",
                "--prompt",
                "Hello",
                "--max-new-tokens",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert [n["neuron"] for n in report["neurons"]] == [0, 2] and len(report["neurons"][0]["top_tokens"]) == 3
    assert len(report["tokens"][0]["neurons"]) == 3
    assert set(report["clamp"]) >= {"before", "after", "diff"}
    assert "layer 1 neuron 0:" in capsys.readouterr().out
    assert main(["analyze", "neurons", str(tiny_dir), "--clamp", "1=2"]) == 2  # no --prompt: one line
