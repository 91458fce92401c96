"""Models and tokenizers in and out through the Hugging Face API, for hub ids, local directories
and the project's default tiny model alike (the tiny model is a saved directory too)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from posttrain.config.recipe import AdapterConfig, ModelConfig
from posttrain.errors import UserError
from posttrain.model import hetero_llama  # noqa: F401  registers model_type puzzle_llama with Auto*
from posttrain.model.adapters import (
    add_adapter,
    is_adapter_dir,
    load_adapter,
    quantization_config,
)
from posttrain.model.paths import DTYPES, resolve_model_path
from posttrain.model.surgery import control_llm  # noqa: F401  registers model_type control_llama with Auto*

log = logging.getLogger(__name__)


def _cannot_load(path: str, err: Exception) -> UserError:
    local = Path(path)
    if local.is_file():
        return UserError(f"cannot load model '{path}': a file, not a model directory")
    if local.is_dir() and not (local / "config.json").is_file():
        return UserError(f"cannot load model '{path}': not a model directory (no config.json)")
    where = "local directory" if local.exists() else "hub id (offline, or not in the local cache)"
    return UserError(f"cannot load model '{path}' as a {where}: {_first_line(err)}")


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


@contextlib.contextmanager
def loading_errors(path: str, what: str = "model"):
    """Turn what `from_pretrained` raises for a bad model directory into one line naming the
    directory and the problem: damaged weights, weights of another shape than config.json, an
    attention implementation that cannot run here, a missing or unreadable file."""
    try:
        yield
    except SafetensorError as err:
        raise UserError(
            f"cannot load {what} '{path}': a weights file (*.safetensors) is damaged or truncated: {_first_line(err)}"
        ) from None
    except ImportError as err:
        if "flash" not in str(err).lower():
            raise
        raise UserError(
            f"cannot load {what} '{path}': model.attn_implementation cannot run here "
            f"({_first_line(err)}); use sdpa or eager"
        ) from None
    except RuntimeError as err:
        if "mismatch" not in str(err):
            raise
        raise UserError(
            f"cannot load {what} '{path}': the weights do not match config.json (tensor "
            "shapes differ: is config.json from another model?)"
        ) from None
    except (OSError, ValueError) as err:
        if what != "model":
            raise UserError(f"cannot load {what} '{path}': {_first_line(err)}") from None
        raise _cannot_load(path, err) from None


def load_tokenizer(path: str, revision: str | None = None, trust_remote_code: bool = False):
    path = resolve_model_path(path)
    with loading_errors(path):
        tok = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        # Llama-3 ships without a pad token; padding positions never carry a loss or attention.
        reserved = "<|finetune_right_pad_id|>"
        tok.pad_token = reserved if reserved in tok.get_vocab() else tok.eos_token
    return tok


@dataclass
class Loaded:
    model: object
    path: str  # where the weights came from
    resume_adapter: bool  # resume_from holds an adapter, to be put on top of the base
    full_checkpoint: bool  # resume_from holds full weights, which replaced the recipe's
    mismatched: list = field(default_factory=list)  # (key, weights' shape, model's shape) reinitialised


def instantiate(
    cfg: ModelConfig,
    seed: int = 0,
    adapter: AdapterConfig | None = None,
    resume_from: str | Path | None = None,
    auto_class=AutoModelForCausalLM,
    config_extra: dict | None = None,
    **load_extra,
) -> Loaded:
    """The weights a run starts from, through `auto_class`: pretrained, or (init: random) fresh
    from the path's config under `seed`, or this run's full checkpoint when resuming; QLoRA bases
    are quantised while loading. Adapters are the caller's next step."""
    adapter = adapter or AdapterConfig()
    resume_adapter = resume_from is not None and is_adapter_dir(resume_from)
    full_checkpoint = resume_from is not None and not resume_adapter
    path = str(resume_from) if full_checkpoint else resolve_model_path(cfg.path)
    kwargs = dict(
        dtype=DTYPES[cfg.dtype], attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code
    )
    quant = quantization_config(adapter, DTYPES[cfg.dtype])
    if quant is not None and cfg.init == "random":
        raise UserError("adapter.kind: qlora quantises pretrained weights; it needs model.init: pretrained")
    mismatched: list = []
    with loading_errors(path):
        if cfg.init == "random" and not full_checkpoint:
            config = AutoConfig.from_pretrained(
                path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, **(config_extra or {})
            )
            torch.manual_seed(seed)  # the same base again when a LoRA run resumes
            model = auto_class.from_config(config, **kwargs)
        else:
            model, info = auto_class.from_pretrained(
                path,
                revision=cfg.revision,
                quantization_config=quant,
                output_loading_info=True,
                **(config_extra or {}),
                **load_extra,
                **kwargs,
            )
            mismatched = list(info.get("mismatched_keys") or [])
    _record_absolute_path(model, path)
    return Loaded(model, path, resume_adapter, full_checkpoint, mismatched)


def _record_absolute_path(model, path: str) -> None:
    """peft writes the base's name_or_path into adapter_config.json; a recipe's relative `model:`
    path there would not load from another working directory, so a local one is made absolute."""
    if Path(path).is_dir():
        model.config._name_or_path = model.name_or_path = str(Path(path).resolve())


def load_model(
    cfg: ModelConfig, seed: int = 0, adapter: AdapterConfig | None = None, resume_from: str | Path | None = None
):
    """A causal LM as the recipe asks (see instantiate), with activation checkpointing when asked,
    then the recipe's adapter: fresh, or the checkpoint's when resuming."""
    adapter = adapter or AdapterConfig()
    loaded = instantiate(cfg, seed, adapter, resume_from)
    model = loaded.model
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    if loaded.resume_adapter:
        return load_adapter(model, resume_from)
    if adapter.kind != "none":
        return add_adapter(model, adapter)
    return model


def enable_activation_checkpointing(model) -> None:
    """Recompute each decoder layer in backward (non-reentrant: works with frozen inputs and LoRA)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048))
