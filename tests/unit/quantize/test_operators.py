"""Quantisers against hand-computed values (formulas in posttrain/quantize/operators.py)."""

import pytest
import torch

from posttrain.quantize import operators as q


def test_rtn_per_row_by_hand():
    w = torch.tensor([[0.0, 0.1, 0.5, 1.0]])
    # 2 bits: L = 3, scale = 1/3, zero = 0; w / scale = [0, .3, 1.5, 3] -> round-half-even [0, 0, 2, 3]
    assert torch.allclose(q.rtn(w, 2, None), torch.tensor([[0.0, 0.0, 2 / 3, 1.0]]))


def test_rtn_groups_have_their_own_scale_and_zero():
    w = torch.tensor([[0.0, 0.1, 0.5, 1.0]])
    # groups [0, .1] and [.5, 1]: each group's min and max are levels, so 2 bits reproduce them
    assert torch.allclose(q.rtn(w, 2, 2), w)
    # a negative group: [-1, 0.2, 0.5], 1 bit more: L = 7, scale = 1.5 / 7, zero = round(7 / 1.5) = 5
    g = torch.tensor([[-1.0, 0.2, 0.5]])
    scale, zero = 1.5 / 7, 5.0
    expected = (torch.clamp(torch.round(g / scale) + zero, 0, 7) - zero) * scale
    assert torch.allclose(q.rtn(g, 3, None), expected)


def test_rtn_ragged_last_group():
    w = torch.arange(10, dtype=torch.float32).reshape(1, 10) / 10
    out = q.rtn(w, 4, 4)  # groups of 4, 4, then 2
    assert torch.allclose(out[:, :4], q.rtn(w[:, :4], 4, None))
    assert torch.allclose(out[:, 8:], q.rtn(w[:, 8:], 4, None))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_rtn_error_is_at_most_half_a_step(bits):
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    out = q.rtn(w, bits, 16)
    groups = w.reshape(16, 4, 16)
    step = (groups.amax(-1) - groups.amin(-1)) / (2**bits - 1)
    assert ((out - w).abs().reshape(16, 4, 16) <= step.unsqueeze(-1) / 2 + 1e-6).all()
    assert all(len(group.unique()) <= 2**bits for group in out.reshape(64, 16))


def test_rtn_bits_out_of_range():
    with pytest.raises(ValueError, match="2..8"):
        q.rtn(torch.ones(2, 2), 1, None)


def test_int8_is_rowwise_absmax():
    w = torch.tensor([[1.0, -0.5, 0.3], [2.0, 0.01, -4.0]])
    scale = w.abs().amax(dim=1, keepdim=True) / 127
    assert torch.allclose(q.int8(w), torch.round(w / scale) * scale, atol=1e-6)


def test_nf4_values_lie_on_the_nf4_code_book():
    import bitsandbytes.functional as bnb

    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(1))
    out = q.nf4(w, 64)
    codes = bnb.get_4bit_type("nf4", device="cpu").float()
    normalised = out / w.abs().amax(dim=1, keepdim=True)  # one block of 64 per row
    assert (normalised.unsqueeze(-1) - codes).abs().amin(-1).max() < 1e-3
    assert (out - w).abs().mean() < 0.15


def test_quantize_state_skips_embeddings_head_and_norms():
    state = {
        "model.embed_tokens.weight": torch.randn(10, 8),
        "lm_head.weight": torch.randn(10, 8),
        "model.norm.weight": torch.randn(8),
        "model.layers.0.mlp.up_proj.weight": torch.randn(4, 8),
    }
    out = q.quantize_state(state, "rtn", 2, None)
    for k in ("model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"):
        assert torch.equal(out[k], state[k])
    assert not torch.equal(out["model.layers.0.mlp.up_proj.weight"], state["model.layers.0.mlp.up_proj.weight"])
