"""`posttrain merge-lora`: an adapter folded into its base, saved as a plain model directory."""

from __future__ import annotations

from pathlib import Path

from posttrain.errors import UserError


def merge_adapter_dir(
    adapter_dir: str | Path, out_dir: str | Path, dtype: str = "float32", overwrite: bool = False
) -> Path:
    """Load the adapter's base, apply the adapter, merge it into the weights and save a plain model
    directory (safetensors + tokenizer) that transformers loads without peft: a causal LM, or a
    sequence classifier (reward model, with its head) for a SEQ_CLS adapter."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    from posttrain.checkpoint.io import model_writer
    from posttrain.checkpoint.output_dir import check_output_dir, write_output_dir
    from posttrain.model.adapters import adapter_base
    from posttrain.model.load import load_tokenizer
    from posttrain.model.paths import DTYPES

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise UserError(
            f"{adapter_dir}: not a LoRA/DoRA adapter directory (no adapter_config.json); "
            "a LLaMA-Adapter V2 adapter cannot be merged: posttrain's loaders take it as it is"
        )
    config = PeftConfig.from_pretrained(str(adapter_dir))
    inputs = [adapter_dir] + ([config.base_model_name_or_path] if config.base_model_name_or_path else [])
    check_output_dir(out_dir, "merge-lora", inputs, overwrite)

    def save(model, tokenizer) -> Path:
        return write_output_dir(out_dir, "merge-lora", inputs, overwrite, model_writer(model, tokenizer))

    if config.task_type == "SEQ_CLS":  # a reward model: its trained score head comes along
        from posttrain.model.reward_model import load_reward_model_dir

        merged, tokenizer = load_reward_model_dir(str(adapter_dir), dtype)
        return save(merged.cpu(), tokenizer)
    base_path = adapter_base(adapter_dir)  # 'tiny' and friends resolved like any model path
    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype=DTYPES[dtype])
    except OSError as err:
        raise UserError(f"cannot load the adapter's base model '{base_path}': {str(err).splitlines()[0]}") from None
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = load_tokenizer(
        str(adapter_dir) if (Path(adapter_dir) / "tokenizer_config.json").exists() else base_path
    )
    return save(merged, tokenizer)
