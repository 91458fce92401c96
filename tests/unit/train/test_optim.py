"""Optimizer parameter groups and the lr schedules, checked against hand-computed values."""

import io
import math

import pytest
import torch

from posttrain.errors import UserError
from posttrain.train.optim import build_optimizer, build_scheduler, lr_multiplier


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.proj = torch.nn.Linear(4, 4)
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def multiplier(kind, step, total=10, warmup=0, min_ratio=0.0, decay_ratio=0.1):
    return lr_multiplier(kind, step, total, warmup, min_ratio, decay_ratio)


def test_optimizer_decays_matrices_only_and_skips_frozen_params():
    model = TinyNet()
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.1)
    decay_group, no_decay_group = optimizer.param_groups
    assert decay_group["weight_decay"] == 0.1 and no_decay_group["weight_decay"] == 0.0
    assert {id(p) for p in decay_group["params"]} == {id(model.embed.weight), id(model.proj.weight)}
    no_decay = {id(model.norm.weight), id(model.norm.bias), id(model.proj.bias)}
    assert {id(p) for p in no_decay_group["params"]} == no_decay
    assert optimizer.defaults["betas"] == (0.9, 0.95) and optimizer.defaults["eps"] == 1e-8


def test_optimizer_rejects_model_without_trainable_params_and_bad_lr():
    model = TinyNet().requires_grad_(False)
    with pytest.raises(UserError, match="no trainable parameters"):
        build_optimizer(model, lr=1e-3)
    with pytest.raises(UserError, match="learning rate"):
        build_optimizer(TinyNet(), lr=0.0)


def test_warmup_is_linear_from_one_over_warmup_to_peak():
    values = [multiplier("constant", step, warmup=4) for step in range(6)]
    assert values == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_linear_decay_hand_values():
    assert multiplier("linear", 0) == pytest.approx(1.0)
    assert multiplier("linear", 5) == pytest.approx(0.5)
    assert multiplier("linear", 10) == pytest.approx(0.0)
    assert multiplier("linear", 5, min_ratio=0.1) == pytest.approx(0.55)
    assert multiplier("linear", 6, warmup=2) == pytest.approx(0.5)  # halfway through steps 2..10
    assert multiplier("linear", 15, min_ratio=0.1) == pytest.approx(0.1)  # past the end stays at the floor


def test_cosine_decay_hand_values():
    assert multiplier("cosine", 0) == pytest.approx(1.0)
    assert multiplier("cosine", 5) == pytest.approx(0.5)
    assert multiplier("cosine", 10) == pytest.approx(0.0)
    assert multiplier("cosine", 5, min_ratio=0.2) == pytest.approx(0.6)
    assert multiplier("cosine", 2, total=8) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_wsd_warms_up_stays_flat_then_decays_over_last_fraction():
    def wsd(step):
        return multiplier("wsd", step, total=100, warmup=10, min_ratio=0.0, decay_ratio=0.2)

    assert wsd(4) == pytest.approx(0.5)
    assert [wsd(step) for step in (10, 50, 79, 80)] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert wsd(90) == pytest.approx(0.5)
    assert wsd(100) == pytest.approx(0.0)
    floor = multiplier("wsd", 100, total=100, warmup=0, min_ratio=0.1, decay_ratio=0.2)
    assert floor == pytest.approx(0.1)


def test_unknown_kind_names_the_valid_ones():
    optimizer = build_optimizer(TinyNet(), lr=1e-3)
    with pytest.raises(UserError, match="constant, linear, cosine, wsd"):
        build_scheduler(optimizer, "exponential", total_steps=10)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(total_steps=0),
        dict(total_steps=10, warmup_steps=11),
        dict(total_steps=10, min_lr_ratio=1.5),
        dict(total_steps=10, decay_ratio=-0.1),
    ],
)
def test_bad_schedule_settings_are_user_errors(kwargs):
    optimizer = build_optimizer(TinyNet(), lr=1e-3)
    with pytest.raises(UserError):
        build_scheduler(optimizer, "linear", **kwargs)


def test_scheduler_drives_optimizer_lr_and_state_loads_weights_only():
    model = TinyNet()
    optimizer = build_optimizer(model, lr=1e-3)
    scheduler = build_scheduler(optimizer, "linear", total_steps=4)
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["last_epoch"] == 4


def test_optimizer_uses_the_fused_kernel_on_cpu_and_matches_the_per_tensor_update():
    torch.manual_seed(0)
    model, reference = TinyNet(), TinyNet()
    reference.load_state_dict(model.state_dict())
    fused = build_optimizer(model, lr=1e-2, weight_decay=0.1)
    assert all(group["fused"] for group in fused.param_groups)
    plain = torch.optim.AdamW(
        [
            {"params": [reference.embed.weight, reference.proj.weight], "weight_decay": 0.1},
            {"params": [reference.norm.weight, reference.norm.bias, reference.proj.bias], "weight_decay": 0.0},
        ],
        lr=1e-2,
        betas=(0.9, 0.95),
        eps=1e-8,
        fused=False,
        foreach=False,
    )
    for step in range(3):
        for net in (model, reference):
            net.zero_grad()
            ids = torch.tensor([[1, 2, 3], [4, 5, 6]]) + step
            net.proj(net.norm(net.embed(ids))).pow(2).sum().backward()
        fused.step()
        plain.step()
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
