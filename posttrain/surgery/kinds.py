"""The `adapter.kind` values implemented here rather than through peft: each freezes the base and
makes its own parameters trainable (model/adapters.add_adapter hands these kinds over)."""

from __future__ import annotations

from posttrain.errors import UserError

SURGERY_KINDS = ("llama_pro",)


def add_surgery_adapter(model, adapter, task_type: str = "CAUSAL_LM"):
    if adapter.kind == "llama_pro":
        from posttrain.surgery.expand import train_only_new_blocks

        model = train_only_new_blocks(model)
        if task_type == "SEQ_CLS":  # a reward model's fresh score head must learn too
            model.score.requires_grad_(True)
        return model
    raise UserError(f"adapter.kind: {adapter.kind} is not a surgery kind ({', '.join(SURGERY_KINDS)})")
