"""The one training loop every stage uses.

    for each optimizer step:
        micro-batches of this process  <- plan (a pure function of the step: exact resume)
        n = loss units of the whole step, summed over micro-batches and processes
        for each micro-batch: backward(objective sum / n)   (token-level normalisation)
        clip; a non-finite loss/gradient stops the run or skips the update (train/guard.py)
        optimizer step, scheduler step
        log / evaluate / checkpoint when due, or on SIGTERM/SIGINT and stop (train/signals.py)

A stage supplies the objective: `weight(mb)` counts the loss units of a micro-batch (tokens for
SFT, pairs for preference losses) and `loss(policy, mb)` returns (sum of unit losses, dict of
summed statistics). Dividing every micro-batch's sum by the step's total count makes the
accumulated gradient equal the full-batch gradient whatever the micro-batch lengths.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator

from posttrain.checkpoint.io import load_training_state, save_checkpoint, save_final
from posttrain.config.recipe import Recipe, recipe_to_dict
from posttrain.errors import RunStopped, UserError
from posttrain.log import MetricsLogger, progress_bar
from posttrain.model.lean_layers import use_lean_layers
from posttrain.train.distributed import (
    Frozen,
    GatheredOptimizerState,
    policy_state_dicts,
)
from posttrain.train.guard import DivergenceGuard
from posttrain.train.optim import build_optimizer, build_scheduler, restore_settings
from posttrain.train.signals import StopRequests

MicroBatch = dict[str, torch.Tensor]


class Objective(Protocol):
    def weight(self, mb: MicroBatch) -> int: ...
    def loss(self, policy: torch.nn.Module, mb: MicroBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


class Plan(Protocol):
    total_steps: int

    def steps(self, start: int = 0): ...


@dataclass
class TrainJob:
    recipe: Recipe
    out_dir: Path
    accelerator: Accelerator
    policy: torch.nn.Module  # the module whose forward the objective calls; its .model is saved
    tokenizer: Any
    plan: Plan
    objective: Objective
    eval_batches: list[MicroBatch] = field(default_factory=list)
    extra_eval: Callable[[torch.nn.Module], dict[str, float]] | None = None  # main process only
    resume_from: Path | None = None


@dataclass
class LoopState:
    step: int = 0
    tokens_seen: int = 0


def run(job: TrainJob) -> dict[str, float]:
    """Train to the plan's last step; returns the last evaluation's metrics."""
    cfg, acc = job.recipe.train, job.accelerator
    if job.recipe.model.lean_layers:
        use_lean_layers(job.policy)
    optimizer = build_optimizer(job.policy, cfg.lr, cfg.weight_decay, tuple(cfg.betas))
    warmup = cfg.warmup_steps or round(cfg.warmup_ratio * job.plan.total_steps)
    scheduler = build_scheduler(
        optimizer, cfg.schedule, job.plan.total_steps, warmup, cfg.min_lr_ratio, cfg.decay_ratio
    )
    _check_deepspeed(acc, cfg.grad_accum_steps)
    policy, optimizer = acc.prepare(job.policy, optimizer)
    reduce_sum = (lambda t: acc.reduce(t.to(acc.device), "sum")) if acc.num_processes > 1 else None
    guard = DivergenceGuard(policy.parameters(), cfg.on_nonfinite, reduce_sum)
    logger = MetricsLogger(
        job.out_dir,
        tensorboard=job.recipe.log.tensorboard,
        wandb_project=job.recipe.log.wandb_project,
        run_name=job.recipe.log.run_name,
        config=recipe_to_dict(job.recipe),
        enabled=acc.is_main_process,
    )
    state = LoopState()
    if job.resume_from is not None:
        state = _resume(job, policy, optimizer, scheduler)
    logger.truncate_after(state.step)  # a resumed run rewrites the steps after its checkpoint
    bar = progress_bar(job.plan.total_steps, initial=state.step, enabled=acc.is_main_process)
    try:
        with StopRequests(reduce_sum) as stops:
            last_eval = _train(job, policy, optimizer, scheduler, state, logger, bar, guard, stops)
        guard.check_weights()  # never save non-finite weights as final/
        weights, auxiliary = policy_state_dicts(acc, policy)  # a collective under FSDP
        if acc.is_main_process:
            save_final(job.out_dir, acc.unwrap_model(policy).model, job.tokenizer, weights, auxiliary)
        acc.wait_for_everyone()
    finally:
        bar.close()  # ends the bar's line, so an error message starts on its own line
        logger.close()
    return last_eval


def _train(
    job: TrainJob,
    policy,
    optimizer,
    scheduler,
    state: LoopState,
    logger: MetricsLogger,
    bar,
    guard: DivergenceGuard,
    stops: StopRequests,
) -> dict[str, float]:
    cfg, acc = job.recipe.train, job.accelerator
    last_eval: dict[str, float] = {}
    pending_tokens = torch.zeros((), device=acc.device)  # read (a device sync) only when logging
    for micro_batches in job.plan.steps(state.step):
        started = time.perf_counter()
        stats = _train_step(job, policy, optimizer, scheduler, micro_batches, guard, state.step + 1)
        state.step += 1
        pending_tokens += stats["step_tokens"]
        bar.update(1)
        if state.step % cfg.log_every == 0 or state.step == job.plan.total_steps:
            state.tokens_seen += int(pending_tokens)
            pending_tokens.zero_()
            row = {k: float(v) for k, v in stats.items()}
            elapsed = time.perf_counter() - started
            row.update(
                tokens_seen=state.tokens_seen,
                tokens_per_s=row["step_tokens"] / elapsed,
                step_time_s=elapsed,
                **peak_memory(acc.device),
            )
            logger.log(row, step=state.step)
            bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
        has_eval = bool(job.eval_batches) or job.extra_eval is not None
        if has_eval and _due(cfg.eval_every, state.step, job.plan.total_steps):
            last_eval = evaluate(job, policy)
            logger.log(last_eval, step=state.step)
        _wait_hook(state.step, stops)
        signum = stops.requested() if state.step < job.plan.total_steps else 0
        saving = bool(cfg.save_every and state.step % cfg.save_every == 0)
        if (saving or signum) and state.step < job.plan.total_steps:
            state.tokens_seen += int(pending_tokens)
            pending_tokens.zero_()
            guard.check_weights()
            ckpt = _save(job, policy, optimizer, scheduler, state)
        _kill_hook(state.step)
        if signum:
            raise RunStopped(
                f"{stops.name(signum)}: stopped after step {state.step} of "
                f"{job.plan.total_steps}; checkpoint saved in {ckpt}; continue with "
                "--resume",
                128 + signum,
            )
    return last_eval


def peak_memory(device: torch.device) -> dict[str, float]:
    """The run's peak memory so far, in GiB: on CUDA the allocator's maximum (tensors only, as
    torch.cuda.max_memory_allocated counts it); elsewhere the process's peak resident set size,
    which includes Python and the libraries, so the two keys are named apart."""
    if device.type == "cuda":
        return {"peak_cuda_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30}
    import resource  # POSIX only

    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 2**30}


def _resume(job: TrainJob, policy, optimizer, scheduler) -> LoopState:
    """Optimizer, scheduler and RNG state from the checkpoint; the hyperparameters from the
    recipe (train/resume.py decides which changes a resume accepts)."""
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    saved = load_training_state(job.resume_from, GatheredOptimizerState(policy, optimizer), scheduler)
    restore_settings(optimizer, scheduler, settings)
    return LoopState(step=saved["step"], tokens_seen=saved["tokens_seen"])


def _due(every: int | None, step: int, total: int) -> bool:
    return step == total or bool(every and step % every == 0)


def _train_step(
    job: TrainJob, policy, optimizer, scheduler, micro_batches: list[MicroBatch], guard: DivergenceGuard, step: int
) -> dict:
    acc, cfg = job.accelerator, job.recipe.train
    stats = accumulate_gradients(job, policy, micro_batches)
    max_norm = cfg.max_grad_norm if cfg.max_grad_norm else float("inf")
    grad_norm = acc.clip_grad_norm_(policy.parameters(), max_norm)
    lr = scheduler.get_last_lr()[0]
    if guard.allow_update(step, stats["loss"], grad_norm):
        optimizer.step()
        guard.after_update(step)
    scheduler.step()  # a skipped update still counts as a step of the schedule and the plan
    optimizer.zero_grad(set_to_none=True)
    if grad_norm is None:  # DeepSpeed clips inside its engine and does not report the norm here
        grad_norm = torch.tensor(float("nan"))
    return {**stats, "lr": lr, "grad_norm": grad_norm}


def accumulate_gradients(job: TrainJob, policy, micro_batches: list[MicroBatch]) -> dict:
    """Forward and backward over one optimizer step's micro-batches, normalised by the step's
    total loss units across micro-batches and processes; returns the step's statistics as device
    tensors (one collective, no host sync: the caller reads them only when it logs)."""
    acc = job.accelerator
    policy.train()
    _prepare_step(job, policy, micro_batches)
    local_weight = sum(job.objective.weight(mb) for mb in micro_batches)
    total_weight = acc.reduce(torch.tensor(float(local_weight), device=acc.device), "sum").clamp(min=1.0)
    # DDP averages gradients over processes; multiplying by world size turns that into a sum,
    # so each unit of the global step counts exactly once.
    scale = acc.num_processes / total_weight
    loss_sum = torch.zeros((), device=acc.device)
    sums: dict[str, torch.Tensor] = {}
    tokens = 0
    take_aux_losses = getattr(acc.unwrap_model(policy), "take_aux_losses", None)
    for i, mb in enumerate(micro_batches):
        tokens += int(mb["num_tokens"].sum())
        mb = {k: v.to(acc.device) for k, v in mb.items() if k != "num_tokens"}
        last = i == len(micro_batches) - 1
        with contextlib.nullcontext() if last else acc.no_sync(policy):
            unit_loss_sum, unit_stats = job.objective.loss(policy, mb)
            objective = unit_loss_sum * scale
            for name, aux in (take_aux_losses() if take_aux_losses is not None else {}).items():
                # Auxiliary losses (MoE load balancing, Control LLM divergence) are per-batch means,
                # so each of the step's micro-batches weighs 1/M; DDP's average over processes
                # supplies the 1/P. In the stats they are rescaled into loss units.
                objective = objective + aux / len(micro_batches)
                as_units = aux.detach() * total_weight / (len(micro_batches) * acc.num_processes)
                unit_stats = {**unit_stats, name: as_units}
                unit_loss_sum = unit_loss_sum + as_units  # the logged loss is the whole objective
            acc.backward(objective)
        loss_sum += unit_loss_sum.detach()
        for k, v in unit_stats.items():
            sums[k] = sums.get(k, 0) + v.detach()
    tokens_t = torch.tensor(float(tokens), device=acc.device)
    totals = acc.reduce(torch.stack([loss_sum, *sums.values(), tokens_t]), "sum")
    means = totals[:-1] / total_weight
    return {"loss": means[0], **dict(zip(sums, means[1:])), "step_tokens": totals[-1]}


def _prepare_step(job: TrainJob, policy, micro_batches: list[MicroBatch]) -> None:
    """An objective may estimate a statistic over a whole step before its losses (KTO's z0): it
    then has a prepare_step(policy, micro_batches, accelerator) method."""
    prepare = getattr(job.objective, "prepare_step", None)
    if prepare is not None:
        prepare(policy, micro_batches, job.accelerator)


@torch.no_grad()
def evaluate(job: TrainJob, policy) -> dict[str, float]:
    """Held-out loss (same objective, same normalisation) plus the stage's extra metrics."""
    acc = job.accelerator
    metrics: dict[str, float] = {}
    if job.eval_batches:
        policy.eval()
        _prepare_step(job, policy, job.eval_batches)
        sums: dict[str, torch.Tensor] = {}
        for mb in job.eval_batches:
            weight = float(job.objective.weight(mb))
            mb = {k: v.to(acc.device) for k, v in mb.items() if k != "num_tokens"}
            loss_sum, stats = job.objective.loss(policy, mb)
            for k, v in {"loss": loss_sum, **stats, "weight": torch.tensor(weight)}.items():
                sums[k] = sums.get(k, 0) + v.detach().to(acc.device)
        totals = acc.reduce(torch.stack(list(sums.values())), "sum")
        weight = totals[-1].clamp(min=1.0)
        metrics.update({f"eval_{k}": float(v / weight) for k, v in zip(sums, totals[:-1])})
    if job.extra_eval is not None and acc.is_main_process:
        metrics.update(job.extra_eval(acc.unwrap_model(policy).model))
    acc.wait_for_everyone()
    return metrics


def _save(job: TrainJob, policy, optimizer, scheduler, state: LoopState) -> Path:
    acc = job.accelerator
    weights, auxiliary = policy_state_dicts(acc, policy)  # gathered on every process (collective under FSDP)
    optimizer_state = Frozen(GatheredOptimizerState(policy, optimizer).state_dict())
    if acc.is_main_process:
        save_checkpoint(
            job.out_dir / "checkpoints",
            state.step,
            acc.unwrap_model(policy).model,
            job.tokenizer,
            optimizer_state,
            scheduler,
            {
                "step": state.step,
                "tokens_seen": state.tokens_seen,
                "num_processes": acc.num_processes,
            },  # resume checks the global batch
            recipe_to_dict(job.recipe),
            keep_last=job.recipe.train.keep_last,
            model_state=weights,
            auxiliary_state=auxiliary,
        )
    acc.wait_for_everyone()
    return job.out_dir / "checkpoints" / f"step-{state.step:08d}"


def _check_deepspeed(acc: Accelerator, grad_accum_steps: int) -> None:
    """accelerate's DeepSpeed wrapper steps the engine inside every backward, which would break this
    loop's own accumulation (token-level normalisation over the whole step)."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.DEEPSPEED and grad_accum_steps > 1:
        raise UserError(
            "with DeepSpeed, set train.grad_accum_steps: 1 (raise micro_batch_size or "
            "processes instead), or use train.distributed: fsdp"
        )


def _kill_hook(step: int) -> None:
    """POSTTRAIN_KILL_AFTER_STEP=k kills the process (SIGKILL, no cleanup) right after step k:
    the resume tests use it to prove that a killed run continues exactly."""
    if os.environ.get("POSTTRAIN_KILL_AFTER_STEP") == str(step):
        os.kill(os.getpid(), signal.SIGKILL)


def _wait_hook(step: int, stops: StopRequests) -> None:
    """POSTTRAIN_WAIT_AFTER_STEP=k waits after step k (at most 60 s) until a stop signal arrives:
    the signal tests use it to send SIGTERM from outside at a known step."""
    if os.environ.get("POSTTRAIN_WAIT_AFTER_STEP") == str(step):
        deadline = time.monotonic() + 60
        while not stops.signum and time.monotonic() < deadline:
            time.sleep(0.05)
