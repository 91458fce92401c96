"""Tokenised data cached on disk, keyed by the records' content, the tokenizer and the settings.

Re-tokenising a large SFT set with its chat template costs minutes at every start; the cache makes
a resumed or repeated run start at once. Entries are safetensors (flat int32 arrays plus offsets):
nothing is unpickled. Changed records, tokenizer, template or setting give a new key.

Each entry records the SHA-256 of its tensors' bytes in its header at write time and is verified
on load: a truncated or corrupted entry (a full disk, a bad copy) is rebuilt, with a warning,
instead of breaking every later run on that data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from posttrain.data.batching import Example

log = logging.getLogger(__name__)
_UNWRITABLE: set[str] = set()  # cache directories already reported as unwritable (warn once)


def cache_dir() -> Path:
    root = os.environ.get("POSTTRAIN_CACHE") or Path.home() / ".cache" / "posttrain"
    return Path(root) / "tokenized"


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    extra = json.dumps([tokenizer.chat_template, tokenizer.bos_token_id, tokenizer.eos_token_id])
    return hashlib.sha256((text + extra).encode()).hexdigest()[:16]


def records_key(records: list, tokenizer_fp: str, **settings) -> str:
    """Hash of the validated records themselves (so column renames, splits and skipped rows are
    covered), the tokenizer fingerprint and the tokenisation settings."""
    digest = hashlib.sha256(json.dumps({"tokenizer": tokenizer_fp, "version": 1, **settings},
                                       sort_keys=True).encode())
    for record in records:
        digest.update(repr(record).encode())
    return digest.hexdigest()[:24]


def cached_examples(key: str, build: Callable[[], list[Example]]) -> list[Example]:
    """Load the examples stored under `key`, or build, store (atomically) and return them."""
    flat = cached_tensors(key, lambda: _flatten(build()))
    return _unflatten(flat)


def cached_tensors(key: str, build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The tensors stored under `key` when the entry verifies, else build, store and return them."""
    path = cache_dir() / f"{key}.safetensors"
    if path.is_file():
        found = _read_verified(path)
        if found is not None:
            return found
        log.warning("%s: tokenised-data cache entry is corrupt (size or hash differs from when it "
                    "was written); rebuilding it", path)
    tensors = {k: v.contiguous() for k, v in build().items()}
    _store(path, tensors)
    return tensors


def _read_verified(path: Path) -> dict[str, torch.Tensor] | None:
    """The entry's tensors, or None when it cannot be read or its hash does not match."""
    try:
        with safe_open(str(path), "pt") as entry:
            expected = (entry.metadata() or {}).get("sha256")
            tensors = {name: entry.get_tensor(name) for name in entry.keys()}
    except Exception:  # safetensors raises its own error types for a truncated or garbled file
        return None
    return tensors if expected == _digest(tensors) else None


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _store(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write an entry atomically; a cache that cannot be written (read-only, no permission, disk
    full) costs only the speed-up, so training goes on without it after one warning."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata={"sha256": _digest(tensors)})
        os.replace(tmp, path)
    except (OSError, SafetensorError) as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if str(path.parent) not in _UNWRITABLE:
            _UNWRITABLE.add(str(path.parent))
            log.warning("tokenised-data cache %s cannot be written (%s): training without it "
                        "(set POSTTRAIN_CACHE to a writable directory)", path.parent,
                        getattr(err, "strerror", None) or err)


def _flatten(examples: list[Example]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(e) for e in examples], dtype=torch.int64)
    ids = torch.tensor([t for e in examples for t in e.input_ids], dtype=torch.int32)
    labels = torch.tensor([t for e in examples for t in e.labels], dtype=torch.int32)
    return {"lengths": lengths, "input_ids": ids, "labels": labels}


def _unflatten(flat: dict[str, torch.Tensor]) -> list[Example]:
    ids, labels = flat["input_ids"].tolist(), flat["labels"].tolist()
    out, start = [], 0
    for n in flat["lengths"].tolist():
        out.append(Example(ids[start : start + n], labels[start : start + n]))
        start += n
    return out
