"""Parameter-efficient tuning through peft: LoRA, DoRA, and QLoRA (LoRA on a 4-bit NF4 base).

Only the adapter (and `modules_to_save`, e.g. embeddings after a vocabulary grows) is trained and
checkpointed; `posttrain merge-lora ADAPTER_DIR --out DIR` folds it into a full model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from posttrain.config.recipe import AdapterConfig
from posttrain.errors import UserError


def quantization_config(adapter: AdapterConfig, compute_dtype: torch.dtype):
    """QLoRA's base: NF4 weights with double quantisation, matmuls in compute_dtype."""
    if adapter.kind != "qlora":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("adapter.kind: qlora needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def add_adapter(model, adapter: AdapterConfig, task_type: str = "CAUSAL_LM"):
    """Wrap the model with a fresh LoRA/DoRA adapter; the base weights are frozen. With task_type
    SEQ_CLS (reward models) peft also trains and saves the score head."""
    from posttrain.model.surgery.kinds import SURGERY_KINDS, add_surgery_adapter

    if adapter.kind in SURGERY_KINDS:  # not peft: block expansion, LLaMA-Adapter V2, Control LLM
        return add_surgery_adapter(model, adapter, task_type)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if adapter.kind == "qlora":
        # Casts norms to fp32 and makes inputs require grad so checkpointed layers backpropagate.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    targets = adapter.target_modules
    config = LoraConfig(
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        modules_to_save=list(adapter.modules_to_save) or None,
        use_dora=adapter.kind == "dora",
        task_type=task_type,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise UserError(f"adapter.target_modules: {str(err).splitlines()[0]}") from None


def load_adapter(model, adapter_dir: str | Path, trainable: bool = True):
    """A saved adapter (a checkpoint of this run, or a user's) on top of an already loaded base."""
    from peft import PeftModel

    from posttrain.model.surgery.wrapper import is_surgery_adapter_dir

    if is_surgery_adapter_dir(adapter_dir):  # LLaMA-Adapter V2, Control LLM (posttrain/surgery)
        from posttrain.model.surgery.kinds import load_surgery_adapter

        return load_surgery_adapter(model, adapter_dir, trainable)

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def is_adapter_dir(path: str | Path) -> bool:
    """A peft adapter (adapter_config.json) or a posttrain/surgery one (posttrain_adapter.json)."""
    from posttrain.model.surgery.wrapper import is_surgery_adapter_dir

    return (Path(path) / "adapter_config.json").is_file() or is_surgery_adapter_dir(path)


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter was trained on (its adapter_config.json), resolved like any model path."""
    from peft import PeftConfig

    from posttrain.model.paths import resolve_model_path
    from posttrain.model.surgery.wrapper import is_surgery_adapter_dir, read_settings

    if is_surgery_adapter_dir(adapter_dir):
        base = read_settings(adapter_dir).get("base_model_name_or_path")
    else:
        base = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    if not base:
        raise UserError(f"{adapter_dir}/adapter_config.json names no base model (base_model_name_or_path)")
    return resolve_model_path(base)


@torch.no_grad()
def merged_weights(model) -> dict[str, torch.Tensor]:
    """The model's weights under the plain HF checkpoint names, adapters folded in (copies): what
    an inference engine loads to generate with the current policy. The model is left unmerged."""
    from posttrain.model.surgery.control_llm import ControlLlamaForCausalLM
    from posttrain.model.surgery.wrapper import SurgeryAdapterModel

    if isinstance(model, (SurgeryAdapterModel, ControlLlamaForCausalLM)):  # no plain-weight form
        raise UserError(
            "LLaMA-Adapter V2 and Control LLM models have no plain Llama weights to hand "
            "to another engine: use grpo.backend: hf"
        )
    if not hasattr(model, "merge_adapter"):
        return {name: tensor.detach() for name, tensor in model.state_dict().items()}
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model.base_model, "is_loaded_in_4bit", False):
        raise UserError("weights of a 4-bit (QLoRA) base cannot be handed to another engine: use grpo.backend: hf")
    model.merge_adapter()
    try:
        state = {}
        for name, tensor in model.state_dict().items():
            if "lora_" in name or "original_module" in name:
                continue
            name = name.removeprefix("base_model.model.").replace(".base_layer", "")
            state[name.replace(".modules_to_save.default", "")] = tensor.detach().clone()
        return state
    finally:
        model.unmerge_adapter()
