"""AdamW with the usual decay/no-decay split, and the learning-rate schedules recipes can name.

Step convention: `lr_multiplier(step)` is the factor applied to the peak lr for optimizer update
number `step` (0-based), which is what `LambdaLR` does when `scheduler.step()` follows each
`optimizer.step()`. Warmup therefore starts at 1/warmup_steps (not 0: an update at lr 0 is wasted)
and reaches the peak on update `warmup_steps - 1`; decays reach `min_lr_ratio` at `total_steps`.
"""

import math

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

from posttrain.errors import UserError

SCHEDULE_KINDS = ("constant", "linear", "cosine", "wsd")


def build_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (frozen base weights under PEFT carry no state).

    Matrices (ndim >= 2) get weight decay; biases, norm scales and other vectors do not, because
    decaying them towards zero shifts activations rather than regularising capacity.
    The fused kernel (one pass over each tensor for all of Adam's element-wise updates) is used
    wherever torch has it: on a CPU it is 4-5x faster than torch's default per-tensor loop (measured
    on the bench's tiny Llama: 0.44 s -> 0.08 s per step at vocabulary 128,256), which is most of
    an update's time when the embedding dominates the parameters. Same update up to float rounding.
    """
    if lr <= 0:
        raise UserError(f"learning rate must be > 0, got {lr}")
    decay, no_decay = split_decay_params(model)
    if not decay and not no_decay:
        raise UserError("the model has no trainable parameters (requires_grad is False everywhere)")
    groups = [
        {"params": params, "weight_decay": wd} for params, wd in ((decay, weight_decay), (no_decay, 0.0)) if params
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=_fused_supported(decay + no_decay))


def _fused_supported(params: list[torch.nn.Parameter]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters (floating point, a device it has
    the kernel for); otherwise torch's default path runs."""
    devices = _get_fused_kernels_supported_devices()
    return all(torch.is_floating_point(p) and p.device.type in devices for p in params)


def split_decay_params(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(params that get weight decay, params that do not), trainable ones only; tied weights once."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():  # parameters() already yields a tied tensor only once
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return decay, no_decay


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
    decay_ratio: float = 0.1,
) -> LambdaLR:
    """A LambdaLR over `lr_multiplier`; call `scheduler.step()` once after each optimizer step.

    The lambda is a plain closure (not a callable object), so `scheduler.state_dict()` holds only
    counters and stays loadable with `torch.load(weights_only=True)`.
    """
    check_schedule_args(kind, total_steps, warmup_steps, min_lr_ratio, decay_ratio)

    def multiplier(step: int) -> float:
        return lr_multiplier(kind, step, total_steps, warmup_steps, min_lr_ratio, decay_ratio)

    return LambdaLR(optimizer, multiplier)


def check_schedule_args(
    kind: str, total_steps: int, warmup_steps: int, min_lr_ratio: float, decay_ratio: float
) -> None:
    """Reject schedule settings that would silently give a nonsense learning-rate curve."""
    if kind not in SCHEDULE_KINDS:
        raise UserError(f"unknown lr schedule '{kind}': valid ones are {', '.join(SCHEDULE_KINDS)}")
    if total_steps < 1:
        raise UserError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise UserError(f"train.warmup_steps must be between 0 and total_steps ({total_steps}), got {warmup_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise UserError(f"min_lr_ratio must be between 0 and 1, got {min_lr_ratio}")
    if not 0.0 <= decay_ratio <= 1.0:
        raise UserError(f"decay_ratio must be between 0 and 1, got {decay_ratio}")


def lr_multiplier(
    kind: str,
    step: int,
    total_steps: int,
    warmup_steps: int,
    min_lr_ratio: float,
    decay_ratio: float,
) -> float:
    """Factor on the peak lr for update `step` (0-based); see the module docstring for the convention."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "linear":
        return _linear_down(_progress(step, warmup_steps, total_steps), min_lr_ratio)
    if kind == "cosine":
        return _cosine_down(_progress(step, warmup_steps, total_steps), min_lr_ratio)
    if kind == "wsd":
        return _wsd_after_warmup(step, total_steps, warmup_steps, min_lr_ratio, decay_ratio)
    raise UserError(f"unknown lr schedule '{kind}': valid ones are {', '.join(SCHEDULE_KINDS)}")


def _progress(step: int, start: int, end: int) -> float:
    """Fraction of the way from `start` to `end`, clamped to [0, 1] (steps past the end stay at the end)."""
    if end <= start:
        return 1.0
    return min(max((step - start) / (end - start), 0.0), 1.0)


def _linear_down(progress: float, min_lr_ratio: float) -> float:
    return 1.0 - (1.0 - min_lr_ratio) * progress


def _cosine_down(progress: float, min_lr_ratio: float) -> float:
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _wsd_after_warmup(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float, decay_ratio: float) -> float:
    """Warmup-stable-decay (MiniCPM): flat at the peak, then linear down over the last decay_ratio of the run.

    The decay never starts before warmup ends, so a large decay_ratio shortens the stable phase to zero
    rather than cutting into the warmup.
    """
    decay_start = max(total_steps - round(decay_ratio * total_steps), warmup_steps)
    if step < decay_start:
        return 1.0
    return _linear_down(_progress(step, decay_start, total_steps), min_lr_ratio)


def restore_settings(optimizer: torch.optim.Optimizer, scheduler: LambdaLR, settings: list[dict]) -> None:
    """Put the recipe's hyperparameters back after loading a checkpoint's optimizer and scheduler
    state (load_state_dict also restores the saved lr, betas and weight decay, which would
    silently ignore a changed recipe). `settings` are the param groups' entries (without
    "params") as built from the recipe. The lr is recomputed exactly as LambdaLR computes it, so
    an unchanged recipe continues bit for bit."""
    scheduler.base_lrs = [group["initial_lr"] for group in settings]
    for group, fresh in zip(optimizer.param_groups, settings):
        group.update(fresh)
    lrs = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs
