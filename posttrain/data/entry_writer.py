"""A tokenised-data cache entry written as the examples stream in, never held whole in memory.

Tokens are appended to two raw int32 files (input_ids, labels) and the row lengths kept as one
int64 array (8 bytes a row). `finish` writes the same safetensors entry `cache.cached_examples`
writes (so it is mapped and verified the same way): an 8-byte header size, a JSON header with
the SHA-256 of the arrays, then the arrays copied in from the raw files. The hash and the copy
read the raw files through the page cache, so peak memory is one chunk of examples whatever the
size of the data.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from array import array
from pathlib import Path

import numpy as np

from posttrain.data.batching import Example

_HEADER_ALIGN = 8  # safetensors writers pad the header so the data starts 8-byte aligned


class EntryWriter:
    """Collects examples for one entry at `path` (written atomically by `finish`)."""

    def __init__(self, path: Path):
        self.path = path
        stem = f"{path.name}.tmp{os.getpid()}"
        self.parts = {name: path.with_name(f"{stem}.{name}") for name in ("input_ids", "labels")}
        self.files = {name: open(part, "wb") for name, part in self.parts.items()}
        self.lengths = array("q")

    def add(self, examples: list[Example]) -> None:
        if not examples:
            return
        for name in ("input_ids", "labels"):
            tokens = [t for e in examples for t in getattr(e, name)]
            self.files[name].write(np.asarray(tokens, dtype=np.int32).tobytes())
        self.lengths.extend(len(e) for e in examples)

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def finish(self, digest_parts) -> None:
        """Write the entry: header (with `digest_parts`' hash of the arrays), then the arrays."""
        for f in self.files.values():
            f.close()
        n = int(sum(self.lengths))
        lengths = np.frombuffer(self.lengths, dtype=np.int64) if self.rows else np.zeros(0, np.int64)
        raw = {name: _bytes_of(part) for name, part in self.parts.items()}
        raw["lengths"] = lengths.view(np.uint8)
        shapes = {"input_ids": [n], "labels": [n], "lengths": [self.rows]}
        dtypes = {
            "input_ids": ("I32", "torch.int32"),
            "labels": ("I32", "torch.int32"),
            "lengths": ("I64", "torch.int64"),
        }
        digest = digest_parts((name, dtypes[name][1], tuple(shapes[name]), raw[name]) for name in sorted(raw))
        header, offset = {}, 0
        for name in sorted(raw):
            header[name] = {
                "dtype": dtypes[name][0],
                "shape": shapes[name],
                "data_offsets": [offset, offset + raw[name].size],
            }
            offset += raw[name].size
        header["__metadata__"] = {"sha256": digest}
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-(8 + len(text)) % _HEADER_ALIGN)
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(text)) + text)
            for name in sorted(raw):
                if name in self.parts:
                    with open(self.parts[name], "rb") as part:
                        shutil.copyfileobj(part, out, 1 << 22)
                else:
                    out.write(raw[name].tobytes())
        os.replace(tmp, self.path)
        self.discard()

    def discard(self) -> None:
        """Remove the raw part files (after finish, or when the build failed)."""
        for name, part in self.parts.items():
            self.files[name].close()
            part.unlink(missing_ok=True)


def _bytes_of(path: Path) -> np.ndarray:
    """The file's bytes as a read-only memory map (an empty array for an empty file)."""
    return np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
