"""The teacher's top-k log-probs at every loss position of a data set, computed once and kept on
disk as three .npy arrays read back memory-mapped (nothing pickled):

    ids.npy     int32   [P, k]   the teacher's k most likely next tokens at each loss position
    logps.npy   float32 [P, k]   their log-probs (full-vocabulary softmax at the temperature)
    offsets.npy int64   [n + 1]  example i owns rows offsets[i]:offsets[i + 1]
    meta.json   teacher, k, temperature, number of examples: a cache is reused only when they match

Rows follow each example's loss positions left to right, the order in which a padded micro-batch
lists them (model/logprobs.py's loss_hidden), so a micro-batch's rows are its examples' slices
concatenated.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from posttrain.data.batching import IGNORE, Example, collate_padded
from posttrain.log import progress_bar
from posttrain.model.logprobs import loss_hidden
from posttrain.objectives.distill import scaled_logprobs


def _loss_positions(ex: Example) -> int:
    return sum(1 for label in ex.labels[1:] if label != IGNORE)


@torch.no_grad()
def write_topk_cache(
    teacher,
    examples: Sequence[Example],
    directory: str | Path,
    k: int,
    temperature: float,
    identity: str,
    pad_id: int,
    batch_size: int = 16,
    chunk_size: int = 256,
) -> Path:
    """Compute the cache (or keep a matching one) and return its directory."""
    directory = Path(directory)
    meta = {
        "teacher": identity,
        "k": k,
        "temperature": temperature,
        "examples": len(examples),
        "positions": sum(_loss_positions(ex) for ex in examples),
    }
    if (directory / "meta.json").is_file() and json.loads((directory / "meta.json").read_text()) == meta:
        return directory
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = [_loss_positions(ex) for ex in examples]
    np.save(tmp / "offsets.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    ids = np.lib.format.open_memmap(tmp / "ids.npy", mode="w+", dtype=np.int32, shape=(meta["positions"], k))
    logps = np.lib.format.open_memmap(tmp / "logps.npy", mode="w+", dtype=np.float32, shape=(meta["positions"], k))
    device, head, row = next(teacher.parameters()).device, teacher.get_output_embeddings(), 0
    bar = progress_bar(len(examples), desc="teacher top-k")
    for start in range(0, len(examples), batch_size):
        mb = collate_padded(list(examples[start : start + batch_size]), pad_id)
        hidden = loss_hidden(teacher, mb["input_ids"].to(device), mb["labels"].to(device))[0]
        for c in range(0, hidden.shape[0], chunk_size):
            top = scaled_logprobs(head(hidden[c : c + chunk_size]), temperature).topk(k, dim=-1)
            n = top.values.shape[0]
            ids[row : row + n], logps[row : row + n] = top.indices.cpu().numpy(), top.values.cpu().numpy()
            row += n
        bar.update(min(batch_size, len(examples) - start))
    bar.close()
    ids.flush(), logps.flush()
    del ids, logps
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.replace(directory)
    return directory


class TopkCache:
    """Read side: memory-mapped arrays; rows_for(indices) -> (ids [n, k], logps [n, k]) tensors."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        self.ids = np.load(directory / "ids.npy", mmap_mode="r")
        self.logps = np.load(directory / "logps.npy", mmap_mode="r")
        self.offsets = np.load(directory / "offsets.npy")

    def rows_for(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        spans = [slice(int(self.offsets[i]), int(self.offsets[i + 1])) for i in indices]
        ids = np.concatenate([self.ids[s] for s in spans])
        logps = np.concatenate([self.logps[s] for s in spans])
        return torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(np.array(logps))
