import torch
from transformers import AutoModelForCausalLM

from posttrain.data.batching import (
    IGNORE,
    Example,
    PackedRow,
    collate_packed,
    collate_padded,
    pack_examples,
)
from posttrain.model.logprobs import token_logprobs


def test_collate_padded_right_pads_and_counts_real_tokens():
    batch = collate_padded([Example([1, 2, 3], [IGNORE, 2, 3]), Example([4], [IGNORE])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3], [IGNORE, IGNORE, IGNORE]]
    assert int(batch["num_tokens"]) == 4


def test_packed_rows_restart_positions_and_mask_each_segment_start():
    rows = pack_examples(
        [Example([5, 6, 7], [5, 6, 7]), Example([8, 9], [IGNORE, 9]), Example([1, 2, 3, 4], [1, 2, 3, 4])], length=6
    )
    assert [r.input_ids for r in rows] == [[5, 6, 7, 8, 9], [1, 2, 3, 4]]
    assert rows[0].position_ids == [0, 1, 2, 0, 1]
    assert rows[0].labels == [IGNORE, 6, 7, IGNORE, 9]
    batch = collate_packed(rows, pad_id=0, length=6)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]
    assert batch["labels"][0, 5] == IGNORE and int(batch["num_tokens"]) == 9


def test_a_packed_documents_token_losses_equal_its_unpacked_losses(tiny_dir):
    """No cross-document attention: per-document position ids give a block-diagonal causal mask."""
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    g = torch.Generator().manual_seed(0)
    docs = [torch.randint(10, 500, (n,), generator=g).tolist() for n in (7, 12, 5)]
    row = PackedRow()
    for d in docs:
        row.add(d, list(d))
    packed = collate_packed([row], pad_id=0, length=30)
    with torch.no_grad():
        packed_lp = token_logprobs(model, packed["input_ids"], packed["labels"], packed["position_ids"])
        start = 0
        for d in docs:
            ids = torch.tensor([d])
            alone = token_logprobs(model, ids, ids.clone())
            torch.testing.assert_close(packed_lp[0, start + 1 : start + len(d)], alone[0, 1:], atol=1e-5, rtol=1e-5)
            assert packed_lp[0, start] == 0  # the first token of a document is not predicted
            start += len(d)
