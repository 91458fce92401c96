"""The `adapter.kind` values implemented here rather than through peft: each freezes the base and
makes its own parameters trainable (model/adapters.add_adapter and load_adapter hand these over)."""

from __future__ import annotations

from posttrain.errors import UserError

SURGERY_KINDS = ("llama_pro", "llama_adapter_v2", "control_llm", "embeddings")


def add_surgery_adapter(model, adapter, task_type: str = "CAUSAL_LM"):
    if adapter.kind == "llama_pro":  # a plain model with more layers: nothing to wrap
        from posttrain.model.surgery.expand import train_only_new_blocks

        model = train_only_new_blocks(model)
        if task_type == "SEQ_CLS":  # a reward model's fresh score head must learn too
            model.score.requires_grad_(True)
        return model
    if adapter.kind == "embeddings":  # vocabulary extension's embeddings-first stage: a plain model
        from posttrain.model.surgery.vocab import train_only_embeddings

        model = train_only_embeddings(model)
        if task_type == "SEQ_CLS":
            model.score.requires_grad_(True)
        return model
    if adapter.kind == "control_llm":  # a full model (model_type control_llama) with extra blocks
        from posttrain.model.surgery.control_llm import to_control_llm

        if task_type != "CAUSAL_LM":
            raise UserError("adapter.kind: control_llm is for causal LMs, not reward models")
        return to_control_llm(model, adapter.blocks, adapter.mix, adapter.learn_mix, adapter.divergence_weight)
    return _attach(
        model,
        {"kind": adapter.kind, "prompt_length": adapter.prompt_length, "prompt_layers": adapter.prompt_layers},
        task_type,
    )


def _attach(model, settings: dict, task_type: str = "CAUSAL_LM"):
    from posttrain.model.surgery.wrapper import SurgeryAdapterModel

    if settings["kind"] == "llama_adapter_v2":
        from posttrain.model.surgery.llama_adapter import add_llama_adapter_v2

        add_llama_adapter_v2(model, settings["prompt_length"], settings["prompt_layers"])
    else:
        raise UserError(f"adapter kind '{settings['kind']}' is not one of {', '.join(SURGERY_KINDS)}")
    if task_type == "SEQ_CLS":
        model.score.requires_grad_(True)
    return SurgeryAdapterModel(model, {**settings, "task_type": task_type})


def load_surgery_adapter(model, adapter_dir, trainable: bool = True):
    """A saved posttrain adapter (surgery/wrapper.py) rebuilt on its already loaded base."""
    from posttrain.model.surgery.wrapper import load_weights, read_settings

    settings = read_settings(adapter_dir)
    adapted = _attach(model, settings, settings.get("task_type", "CAUSAL_LM"))
    return load_weights(adapted, adapter_dir, trainable)
