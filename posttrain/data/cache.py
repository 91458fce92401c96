"""Tokenised data cached on disk, keyed by the records' content, the tokenizer and the settings.

Re-tokenising a large SFT set with its chat template costs minutes at every start; the cache makes
a resumed or repeated run start at once. Entries are safetensors (flat int32 arrays plus offsets):
nothing is unpickled. Changed records, tokenizer, template or setting give a new key.

Each entry records the SHA-256 of its tensors' bytes in its header at write time and is verified
on load: a truncated or corrupted entry (a full disk, a bad copy) is rebuilt, with a warning,
instead of breaking every later run on that data.

Tokenised examples are read back memory-mapped (posttrain/data/table.py): the process holds views
into the entry's flat arrays, never a Python list per row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from posttrain.data.batching import Example
from posttrain.data.entry_writer import EntryWriter
from posttrain.data.table import ExampleTable
from posttrain.data.text_files import cannot_read
from posttrain.errors import UserError

log = logging.getLogger(__name__)
_UNWRITABLE: set[str] = set()  # cache directories already reported as unwritable (warn once)


def cache_dir() -> Path:
    root = os.environ.get("POSTTRAIN_CACHE") or Path.home() / ".cache" / "posttrain"
    return Path(root) / "tokenized"


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    from posttrain.data.documents import document_boundaries  # how documents are wrapped

    extra = json.dumps(
        [tokenizer.chat_template, tokenizer.bos_token_id, tokenizer.eos_token_id, document_boundaries(tokenizer)]
    )
    return hashlib.sha256((text + extra).encode()).hexdigest()[:16]


def source_key(path: str | Path, tokenizer_fp: str, **settings) -> str:
    """Hash of a source's bytes (every file of a dataset directory, with its relative name), the
    tokenizer fingerprint and the reading and tokenisation settings: the key of a streamed build,
    known before a single row is read (records_key needs every record in memory)."""
    digest = hashlib.sha256(
        json.dumps({"tokenizer": tokenizer_fp, "version": 2, **settings}, sort_keys=True, default=str).encode()
    )
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(f"{file.relative_to(path) if path.is_dir() else ''}:{file.stat().st_size};".encode())
        try:
            with open(file, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
        except OSError as err:
            raise cannot_read(file, err) from None
    return digest.hexdigest()[:24]


def records_key(records: list, tokenizer_fp: str, **settings) -> str:
    """Hash of the validated records themselves (so column renames, splits and skipped rows are
    covered), the tokenizer fingerprint and the tokenisation settings."""
    digest = hashlib.sha256(json.dumps({"tokenizer": tokenizer_fp, "version": 1, **settings}, sort_keys=True).encode())
    for record in records:
        digest.update(repr(record).encode())
    return digest.hexdigest()[:24]


def cached_examples(key: str, build: Callable[[], list[Example]]) -> ExampleTable:
    """The examples stored under `key`, memory-mapped, or build, store (atomically) and map them.
    With a cache that cannot be written the built arrays are kept in memory instead."""
    path = cache_dir() / f"{key}.safetensors"
    if (table := _warm_entry(path)) is not None:
        return table
    tensors = _flatten(build())
    _store(path, tensors)
    mapped = _map_verified(path) if path.is_file() else None
    return _table(mapped or {name: t.numpy() for name, t in tensors.items()})


def streamed_examples(key: str, chunks: Iterable[list[Example]]) -> ExampleTable:
    """As cached_examples, for examples that arrive in chunks: a cold build writes each chunk into
    the entry as it comes, so it never holds all examples (data larger than memory). With a cache
    that cannot be written the entry goes to a private temporary file, unlinked once mapped. When
    writing fails midway (a full disk) and `chunks` can be iterated again (prepare.py's can), the
    examples are rebuilt in memory after one warning: training goes on without the cache."""
    path = cache_dir() / f"{key}.safetensors"
    if (table := _warm_entry(path)) is not None:
        return table
    writable = _writable(path.parent)
    target = path if writable else Path(tempfile.mkdtemp(prefix="posttrain-tokens-")) / path.name
    try:
        writer = EntryWriter(target)
        try:
            for chunk in chunks:
                writer.add(chunk)
            writer.finish(_digest_parts)
        except BaseException:
            writer.discard()
            raise
    except OSError as err:
        with contextlib.suppress(OSError):  # what finish() had begun under the entry's name
            target.with_name(f"{target.name}.tmp{os.getpid()}").unlink(missing_ok=True)
        if iter(chunks) is chunks:  # a one-shot iterator, partly consumed: nothing to rebuild from
            raise UserError(
                f"{target.parent}: cannot write the tokenised data ({getattr(err, 'strerror', None) or err})"
            ) from None
        _warn_unwritable(target.parent, err)  # a full disk costs only the cache's speed-up
        examples = [example for chunk in chunks for example in chunk]
        return _table({name: t.numpy() for name, t in _flatten(examples).items()})
    mapped = _map_verified(target)
    if not writable:  # the mapping outlives the file's name
        target.unlink()
        target.parent.rmdir()
    return _table(mapped)


def _warm_entry(path: Path) -> ExampleTable | None:
    """The entry at `path` mapped, when it exists and verifies; a corrupt one is warned about
    (and then rebuilt by the caller)."""
    if not path.is_file():
        return None
    mapped = _map_verified(path)
    if mapped is None:
        _warn_corrupt(path)
        return None
    return _table(mapped)


def _writable(directory: Path) -> bool:
    """Whether entries can be created in `directory` (made if missing); warns once when not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            return True
    except OSError as err:
        _warn_unwritable(directory, err)
        return False


def _warn_unwritable(directory: Path, err: OSError) -> None:
    if str(directory) not in _UNWRITABLE:
        _UNWRITABLE.add(str(directory))
        log.warning(
            "tokenised-data cache %s cannot be written (%s): training without it "
            "(set POSTTRAIN_CACHE to a writable directory)",
            directory,
            getattr(err, "strerror", None) or err,
        )


def cached_tensors(key: str, build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The tensors stored under `key` when the entry verifies, else build, store and return them."""
    path = cache_dir() / f"{key}.safetensors"
    if path.is_file():
        found = _read_verified(path)
        if found is not None:
            return found
        _warn_corrupt(path)
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


def _warn_corrupt(path: Path) -> None:
    log.warning(
        "%s: tokenised-data cache entry is corrupt (size or hash differs from when it was written); rebuilding it", path
    )


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    return _digest_parts(
        (name, str(t.dtype), tuple(t.shape), t.contiguous().view(torch.uint8).numpy())
        for name, t in sorted(tensors.items())
    )


def _digest_parts(parts) -> str:
    """SHA-256 over (name, torch dtype name, shape, raw bytes) of each tensor, in name order."""
    digest = hashlib.sha256()
    for name, dtype, shape, data in parts:
        digest.update(f"{name}:{dtype}:{shape};".encode())
        digest.update(memoryview(data) if data.size else b"")
    return digest.hexdigest()


_NUMPY_DTYPES = {"I32": (np.int32, "torch.int32"), "I64": (np.int64, "torch.int64")}


def _map_verified(path: Path) -> dict[str, np.ndarray] | None:
    """The entry's integer tensors as read-only views of the memory-mapped file (the safetensors
    layout: an 8-byte little-endian header size, a JSON header, then the data), or None when it
    cannot be parsed or its hash does not match the one recorded at write time."""
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        (size,) = struct.unpack("<Q", raw[:8].tobytes())
        header = json.loads(raw[8 : 8 + size].tobytes())
        expected = header.pop("__metadata__", {}).get("sha256")
        views, parts = {}, []
        for name, info in sorted(header.items()):
            np_dtype, torch_dtype = _NUMPY_DTYPES[info["dtype"]]
            begin, end = (8 + size + int(o) for o in info["data_offsets"])
            if not 8 + size <= begin <= end <= len(raw):
                return None
            data = raw[begin:end]
            views[name] = data.view(np_dtype).reshape(info["shape"])
            parts.append((name, torch_dtype, tuple(info["shape"]), data))
    except (ValueError, KeyError, TypeError, AttributeError, struct.error, OSError):
        return None  # truncated, garbled, or not an entry of flat integer arrays
    return views if expected == _digest_parts(parts) else None


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
        _warn_unwritable(path.parent, err)


def _flatten(examples: list[Example]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(e) for e in examples], dtype=torch.int64)
    total = int(lengths.sum())
    ids = np.fromiter((t for e in examples for t in e.input_ids), dtype=np.int32, count=total)
    labels = np.fromiter((t for e in examples for t in e.labels), dtype=np.int32, count=total)
    return {"lengths": lengths, "input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}


def _table(flat: dict[str, np.ndarray]) -> ExampleTable:
    return ExampleTable(flat["input_ids"], flat["labels"], flat["lengths"])
