"""The two sides of every bench/*_vs_trl.py run: posttrain's real training loop (loop.run over a
plan, with the recipe every bench shares) and a TRL trainer timed step by step; the loss of each
before training, for the check that the two compute the same objective."""

from __future__ import annotations

import time
from pathlib import Path

from harness import BATCH, proc_status_kib

# ---- posttrain: the real loop --------------------------------------------------------------


class HighWaterAfterLastStep:
    """Passes a plan through unchanged and reads VmHWM when the loop asks for the step after the
    last, i.e. right after the last step and before the loop saves the final model."""

    def __init__(self, plan):
        self.plan, self.total_steps, self.hwm_kib = plan, plan.total_steps, None

    def steps(self, start: int = 0):
        yield from self.plan.steps(start)
        self.hwm_kib = proc_status_kib()["VmHWM"]


def posttrain_recipe(args, out_dir: Path, lr: float, *overrides: str):
    """The recipe every posttrain run gets: batch BATCH, one micro-batch, warmup + steps steps,
    constant lr, no decay, clipping 1.0, TRL's AdamW betas, metrics every step; plus overrides."""
    from posttrain.config.recipe import load_recipe

    return load_recipe(
        None,
        [
            f"train.micro_batch_size={BATCH}",
            "train.grad_accum_steps=1",
            f"train.max_steps={args.warmup + args.steps}",
            f"train.lr={lr}",
            "train.schedule=constant",
            "train.warmup_steps=0",
            "train.max_grad_norm=1.0",
            "train.weight_decay=0.0",
            "train.betas=[0.9,0.999]",  # TRL's (transformers.Trainer's) AdamW betas
            f"train.logprob_chunk_size={args.chunk_size}",
            "train.log_every=1",
            "log.tensorboard=false",
            "seed=0",
            f"output_dir={out_dir}",
            *overrides,
        ],
    )


def run_posttrain(recipe, accelerator, policy, tokenizer, plan, objective, args, **job) -> dict:
    """loop.run over `plan` (wrapped to read the peak after the last step); the timed steps'
    step_time_s from metrics.jsonl, the first step's loss."""
    from posttrain.log import read_metrics
    from posttrain.train import loop

    total = args.warmup + args.steps
    plan = HighWaterAfterLastStep(plan)
    loop.run(
        loop.TrainJob(
            recipe=recipe,
            out_dir=Path(recipe.output_dir),
            accelerator=accelerator,
            policy=policy,
            tokenizer=tokenizer,
            plan=plan,
            objective=objective,
            **job,
        )
    )
    rows = [r for r in read_metrics(Path(recipe.output_dir)) if "step_time_s" in r]
    assert [r["step"] for r in rows] == list(range(1, total + 1)), [r["step"] for r in rows]
    return {
        "step_times": [r["step_time_s"] for r in rows if r["step"] > args.warmup],
        "hwm_kib": plan.hwm_kib,
        "first_loss": rows[0]["loss"],
        "metrics": rows,
        "optimizer": _posttrain_optimizer(recipe),
    }


def _posttrain_optimizer(recipe) -> str:
    """What posttrain's build_optimizer gives for these parameters (fused where torch has the kernel)."""
    import torch

    from posttrain.train.optim import build_optimizer

    probe = build_optimizer(torch.nn.Linear(1, 1), recipe.train.lr)
    return f"torch.optim.AdamW fused={probe.param_groups[0]['fused']}"


def posttrain_loss(objective, policy, mb: dict, accelerator) -> float:
    """The objective's loss per unit on one micro-batch, without gradient, before training (the
    loop's normalisation: the summed loss over objective.weight)."""
    import torch

    with torch.no_grad():
        prepare = getattr(objective, "prepare_step", None)
        if prepare is not None:
            prepare(policy, [mb], accelerator)
        loss, _ = objective.loss(policy, mb)
    return float(loss) / objective.weight(mb)


def trl_loss(trainer, batch: dict) -> float:
    """TRL's own compute_loss on one collated batch, without gradient, before training."""
    import torch

    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, batch))


# ---- TRL: a trainer with a step timer -------------------------------------------------------


def trl_config_kwargs(args, out_dir: Path, lr: float) -> dict:
    """What every TRL config gets, matching posttrain_recipe. TRL's configs turn activation
    checkpointing and bf16 on by default: both off, so both frameworks run the same computation."""
    return dict(
        output_dir=str(out_dir),
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.999,
        max_grad_norm=1.0,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10**6,
        max_steps=args.warmup + args.steps,
        dataloader_num_workers=0,
        use_cpu=True,
        bf16=False,
        seed=0,
        gradient_checkpointing=False,
    )


def trl_step_timer():
    """A TrainerCallback that times each optimizer step (on_step_begin to on_step_end, after the
    batch is fetched) and reads VmHWM after the last one."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.hwm_kib = None
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._start)
            if state.global_step == state.max_steps:
                self.hwm_kib = proc_status_kib()["VmHWM"]

    return StepTimer()


def train_trl(trainer, timer, args) -> dict:
    """trainer.train(), then the timed steps, the peak and the optimizer TRL ran."""
    trainer.train()
    assert len(timer.times) == args.warmup + args.steps, len(timer.times)
    model = trainer.model
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules()), "checkpointing on"
    opt = trainer.optimizer
    opt = getattr(opt, "optimizer", opt)
    flags = {k: opt.defaults.get(k) for k in ("fused", "foreach")}
    return {
        "step_times": timer.times[args.warmup :],
        "hwm_kib": timer.hwm_kib,
        "optimizer": f"{type(opt).__module__}.{type(opt).__name__} {flags} (optim={trainer.args.optim})",
    }


def save_initial_policy(model, tmp: Path) -> int:
    """TRL with ref_model=None and no precompute loads its reference from the policy's
    config._name_or_path, which a model built from a config lacks: save the initial policy and
    point the config there, as from_pretrained would. Returns VmHWM after the save."""
    model_dir = tmp / "initial-policy"
    model.save_pretrained(model_dir)
    model.config._name_or_path = str(model_dir)
    return proc_status_kib()["VmHWM"]


def pretokenised(trainer_class):
    """A TRL trainer subclass that takes the dataset as given and times its reference precompute.

    TRL 1.16's DPOTrainer and KTOTrainer have no path for pre-tokenised rows: _prepare_dataset
    always tokenises text. Our datasets already hold the id columns it writes (DPO: prompt_ids /
    chosen_ids / rejected_ids; KTO: prompt_ids / completion_ids / label / KL_completion_ids). Its
    only other work, dropping rows whose prompt alone fills max_length, drops nothing here."""

    class Pretokenised(trainer_class):
        precompute_s = None

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

        def _precompute_ref_logps(self, dataset, name, batch_size):
            started = time.perf_counter()
            out = super()._precompute_ref_logps(dataset, name, batch_size)
            self.precompute_s = (self.precompute_s or 0.0) + time.perf_counter() - started
            return out

    Pretokenised.__name__ = f"Pretokenised{trainer_class.__name__}"
    return Pretokenised
