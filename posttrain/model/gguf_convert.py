"""A GGUF file (llama.cpp's format) into an ordinary Hugging Face model directory.

transformers reads GGUF through the `gguf` package and dequantises every tensor to float, but it
refuses to `save_pretrained` a model loaded that way (the config keeps a gguf quantization_config).
So the weights are copied into a fresh model built from the same config without it, and saved as
safetensors next to the tokenizer (with the file's chat template) and a generation config whose
stop tokens include the end-of-turn token. The weights are the dequantised values of the file's
quantisation (e.g. Q4_1), not the original float checkpoint: say so wherever results are reported.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from posttrain.checkpoint.permissions import apply_umask
from posttrain.errors import UserError

# Float tensor types transformers copies as they are; quantised ones need gguf's dequantiser.
FLOAT_TYPES = {"F32", "F16", "BF16"}
# Tokens that end a turn or a document in common chat templates: generation must stop on them.
STOP_TOKEN_NAMES = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>", "</s>")
NEEDED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")


def _reader(path: Path):
    """gguf's reader, with a truncated or foreign file turned into one line naming it."""
    from gguf import GGUFReader

    if not path.is_file():
        raise UserError(f"GGUF file '{path}' does not exist")
    try:
        return GGUFReader(str(path))
    except (ValueError, IndexError, KeyError, OSError, TypeError) as err:
        raise UserError(
            f"cannot read GGUF file '{path}': truncated or not a GGUF file "
            f"({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
        ) from None


def _field_text(reader, key: str) -> str | None:
    field = reader.fields.get(key)
    return None if field is None else str(field.contents())


def check_gguf(path) -> dict:
    """What the file holds ({architecture, tensor_types}), or one line naming what is unsupported:
    an architecture transformers cannot map, a tensor type gguf cannot dequantise, no chat template."""
    from gguf.quants import _type_traits
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    path = Path(path)
    reader = _reader(path)
    arch = _field_text(reader, "general.architecture")
    if arch is None:
        raise UserError(f"GGUF file '{path}': no general.architecture field (not a model file?)")
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise UserError(
            f"GGUF file '{path}': architecture '{arch}' is not supported by transformers' "
            f"GGUF loader (supported: {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))})"
        )
    readable = FLOAT_TYPES | {t.name for t in _type_traits}
    types = sorted({t.tensor_type.name for t in reader.tensors})
    unsupported = [t for t in types if t not in readable]
    if unsupported:
        raise UserError(
            f"GGUF file '{path}': tensor type(s) {', '.join(unsupported)} cannot be dequantised by the gguf package"
        )
    if not reader.tensors:
        raise UserError(f"GGUF file '{path}': holds no tensors")
    if not _field_text(reader, "tokenizer.chat_template"):
        raise UserError(
            f"GGUF file '{path}': the tokenizer has no chat template "
            "(tokenizer.chat_template is missing); chat stages need one"
        )
    return {"architecture": arch, "tensor_types": types}


def stop_token_ids(tokenizer) -> list[int]:
    """eos first, then every end-of-turn/end-of-document token the vocabulary has."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids += [vocab[name] for name in STOP_TOKEN_NAMES if name in vocab]
    return list(dict.fromkeys(ids))


def _load_dequantised(path: Path):
    """(model without the gguf quantization config, tokenizer), both read from the file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the reason save_pretrained refuses; the weights are float now
    config.name_or_path = ""
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    return fresh, tokenizer


def _generation_config(model, tokenizer):
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_token_ids(tokenizer), pad_token_id=pad
    )


def is_converted(out: Path) -> bool:
    """A conversion is published by one atomic rename, so its files being present means it is whole."""
    return all((Path(out) / name).is_file() for name in NEEDED_FILES)


def convert_gguf(gguf_file, out_dir) -> Path:
    """Write the Hugging Face directory for gguf_file into out_dir (atomically: built in a sibling
    temporary directory, then renamed; a parallel converter that wins the race is kept)."""
    src, out = Path(gguf_file), Path(out_dir)
    facts = check_gguf(src)
    if is_converted(out):
        return out
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out '{out}' exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a model directory is readable like any other
    try:
        model, tokenizer = _load_dequantised(src)
        model.generation_config = _generation_config(model, tokenizer)
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "gguf_source.json").write_text(
            json.dumps(
                {
                    "gguf_file": src.name,
                    **facts,
                    "note": "weights dequantised to float32 from the file's quantised tensors",
                },
                indent=2,
            )
            + "\n"
        )
        apply_umask(tmp)
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _publish(tmp: Path, out: Path) -> None:
    if out.exists() and not any(out.iterdir()):
        out.rmdir()  # an empty directory (e.g. made by a caller) is not a conversion
    try:
        os.rename(tmp, out)
    except OSError:
        if not is_converted(out):
            raise UserError(f"cannot write the converted model to '{out}': it exists and is not one") from None


def converted_dir_for(gguf_file) -> Path:
    """`model: FILE.gguf` in a recipe or on the command line: the file converted once into the
    posttrain cache (keyed by its absolute path, size and modification time), then reused."""
    import hashlib

    from posttrain.model.tiny import cache_root

    src = Path(gguf_file).resolve()
    if not src.is_file():
        raise UserError(f"GGUF file '{gguf_file}' does not exist")
    stat = src.stat()
    key = hashlib.sha256(f"{src}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_root() / "gguf" / f"{src.stem}-{key}"
    return out if is_converted(out) else convert_gguf(src, out)
