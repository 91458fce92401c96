"""What every surgery command shares: loading the model as every stage does (one-line errors), and
an --out that stays apart from the inputs, written to a temp sibling and renamed into place."""

from __future__ import annotations


def load_for_surgery(model: str, dtype: str = "float32"):
    """(model, tokenizer, resolved path), loaded as every stage loads a model (one-line errors)."""
    from posttrain.config.recipe import ModelConfig
    from posttrain.model.load import instantiate, load_tokenizer

    loaded = instantiate(ModelConfig(path=model, dtype=dtype))
    return loaded.model, load_tokenizer(loaded.path), loaded.path


def surgery_inputs(args, *models: str, files: tuple[str | None, ...] = ()) -> list:
    """The paths a surgery command reads (--out must stay apart from them), checked against --out
    before any model is loaded."""
    from posttrain.checkpoint.output_dir import check_output_dir
    from posttrain.model.paths import resolve_model_path

    inputs = [resolve_model_path(m) for m in models] + [f for f in files if f]
    check_output_dir(args.out, f"surgery {args.surgery_command}", inputs, args.overwrite)
    return inputs


def save_surgery_output(args, inputs: list, model, tokenizer):
    """The changed model under --out: a temp sibling renamed into place, marked as this command's."""
    from posttrain.checkpoint.io import model_writer
    from posttrain.checkpoint.output_dir import write_output_dir

    return write_output_dir(
        args.out, f"surgery {args.surgery_command}", inputs, args.overwrite, model_writer(model, tokenizer)
    )
