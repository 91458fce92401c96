"""Issue 30 item 9: a full disk. The tokenised cache costs only its speed-up (a warning, training
goes on with the data in memory, as documented); writing final/ is one line naming the path and
leaves what was there (the last checkpoint, an earlier final/) intact."""

import errno
import logging
import os

import pytest
import torch

from posttrain.data import cache
from posttrain.data.batching import Example
from posttrain.errors import UserError


def _chunks():
    return [[Example([1, 2, 3], [-100, 2, 3]), Example([4, 5], [4, 5])], [Example([6, 7, 8, 9], [6, 7, 8, 9])]]


@pytest.mark.parametrize("fail_at", ["add", "finish"])
def test_full_disk_while_streaming_the_cache_warns_and_keeps_the_examples(tmp_path, monkeypatch, caplog, fail_at):
    from posttrain.data import entry_writer

    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))

    def disk_full(self, *args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(entry_writer.EntryWriter, fail_at, disk_full)
    with caplog.at_level(logging.WARNING):
        table = cache.streamed_examples("k" * 16, _chunks())  # iterable again, as prepare.py passes them
    assert [(list(table[i].input_ids), list(table[i].labels)) for i in range(len(table))] == [
        (e.input_ids, e.labels) for chunk in _chunks() for e in chunk
    ]
    assert any("No space left on device" in r.getMessage() for r in caplog.records)
    assert not list(tmp_path.rglob("*.safetensors*"))  # no partial entry left to be mistaken for one


def test_full_disk_while_writing_final_is_one_line_and_keeps_the_earlier_final(tmp_path, monkeypatch):
    import transformers.modeling_utils as modeling
    from safetensors import SafetensorError
    from transformers import LlamaConfig, LlamaForCausalLM

    from posttrain.checkpoint.io import save_final

    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    earlier = save_final(tmp_path, model, None)
    before = (earlier / "model.safetensors").read_bytes()

    def disk_full(*args, **kwargs):  # what safetensors raises on a full disk: not an OSError
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(modeling, "safe_save_file", disk_full)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(UserError, match=rf"{tmp_path / 'final'}.*No space left on device") as err:
        save_final(tmp_path, model, None)
    assert len(str(err.value).splitlines()) == 1
    assert (earlier / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]
