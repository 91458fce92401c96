"""bench/harness.py's pure parts: the FLOP count, MFU, the per-run summary, parameter counts."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import harness  # noqa: E402

CFG = {"num_hidden_layers": 2, "hidden_size": 3}


def test_model_flops_by_hand():
    # 6 (N_body T + N_head T_scored) + 12 L H S T = 6 (10*4 + 3*2) + 12*2*3*5*4
    assert harness.model_flops(10, 3, tokens=4, scored=2, seq_len=5, cfg=CFG) == 276 + 1440


def test_model_flops_every_position_scored_is_palm_formula():
    n, t, s = 13, 4, 5
    assert harness.model_flops(10, 3, t, t, s, CFG) == 6 * n * t + 12 * 2 * 3 * s * t


def test_mfu_is_achieved_rate_over_matmul_rate():
    # 2 GFLOP in 0.5 s = 4 GFLOP/s, against 8 GFLOP/s measured
    assert harness.mfu(2e9, 0.5, 8.0) == pytest.approx(0.5)


def test_summarise():
    r = {
        "step_times": [1.0, 3.0],
        "peak_kib": 3072,
        "baseline_rss_kib": 1024,
        "tokens_per_step": 100,
        "units_per_step": 8,
        "flops_per_step": 4e9,
    }
    out = harness.summarise(r, peak_gflops=4.0)
    assert out["s_per_step"] == 2.0 and out["s_per_step_median"] == 2.0 and out["steps_per_s"] == 0.5
    assert out["tokens_per_s"] == 50.0 and out["units_per_s"] == 4.0
    assert out["peak_mib"] == 3.0 and out["train_mib"] == 2.0
    assert out["mfu"] == pytest.approx(0.5)  # 4e9 / 2 s = 2 GFLOP/s of 4
    assert "mfu" not in harness.summarise({**r, "flops_per_step": None}, 4.0)


def test_max_abs_diff():
    assert harness.max_abs_diff([[1.0, 2.0], [3.0, 4.5]], [[1.5, 2.0], [3.0, 4.0]]) == 0.5
    with pytest.raises(ValueError):
        harness.max_abs_diff([1.0, 2.0], [1.0])


class _Tensor:
    def __init__(self, n):
        self.n = n

    def numel(self):
        return self.n


class _Layer:
    def __init__(self, n):
        self.weight = _Tensor(n)


class _Model:
    """parameters(): input embedding 20, body 100, LM head 30 (None: a classifier's model)."""

    def __init__(self, head: bool):
        self.head = _Layer(30) if head else None

    def parameters(self):
        return [_Tensor(20), _Tensor(100)] + ([self.head.weight] if self.head else [_Tensor(1)])

    def get_input_embeddings(self):
        return _Layer(20)

    def get_output_embeddings(self):
        return self.head


def test_param_counts_split_embedding_head_body():
    assert harness.param_counts(_Model(head=True)) == {"params": 150, "head_params": 30, "body_params": 100}
    # a classifier: no LM head, its score head counts in the body
    assert harness.param_counts(_Model(head=False)) == {"params": 121, "head_params": 0, "body_params": 101}
