"""`posttrain distill` on the tiny test model: the top-k cache against the on-the-fly teacher,
the stage lowering its divergence through the one loop, and bad teachers as one-line errors."""

import json
import shutil

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from posttrain.checkpoint.weights import read_state_dict, write_model_dir
from posttrain.cli import main
from posttrain.config.recipe import SourceConfig, load_recipe
from posttrain.data.batching import collate_padded
from posttrain.data.chat import ensure_chat_template
from posttrain.data.prepare import conversation_examples
from posttrain.model.distill_head import (
    DistillPolicy,
    TeacherFromCache,
    TeacherOnTheFly,
)
from posttrain.model.load import load_tokenizer
from posttrain.model.teacher_cache import TopkCache, write_topk_cache
from posttrain.stages import distill


@pytest.fixture(scope="module")
def teacher_dir(tiny_dir, tmp_path_factory):
    gen = torch.Generator().manual_seed(3)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in read_state_dict(tiny_dir).items()}
    return write_model_dir(state, tiny_dir, tmp_path_factory.mktemp("teacher") / "model")


def _examples(tiny_dir, path):
    tok = load_tokenizer(str(tiny_dir))
    ensure_chat_template(tok)
    return tok, conversation_examples(tok, SourceConfig(path=str(path)), 128, "fail")[:6]


@torch.no_grad()
def test_topk_cache_equals_on_the_fly_up_to_truncation(tiny_dir, teacher_dir, small_data, tmp_path):
    tok, examples = _examples(tiny_dir, small_data["sft"])
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir)
    student = DistillPolicy(AutoModelForCausalLM.from_pretrained(tiny_dir), chunk_size=16)
    vocab = teacher.config.vocab_size
    mb = collate_padded(examples, tok.pad_token_id)
    on_the_fly = student(mb, TeacherOnTheFly(teacher, 1.0), 0.0, 1.0)
    full = TopkCache(write_topk_cache(teacher, examples, tmp_path / "full", vocab, 1.0, "t", tok.pad_token_id))
    mb["teacher_ids"], mb["teacher_logps"] = full.rows_for(range(len(examples)))
    assert student(mb, TeacherFromCache(), 0.0, 1.0).item() == pytest.approx(on_the_fly.item(), rel=1e-5)
    # k < V: the cached rows are exactly the on-the-fly teacher's k largest log-probs
    top = TopkCache(write_topk_cache(teacher, examples, tmp_path / "top8", 8, 1.0, "t", tok.pad_token_id))
    ids, logps = top.rows_for([2, 0])
    source = TeacherOnTheFly(teacher, 1.0)
    source.prepare(collate_padded([examples[2], examples[0]], tok.pad_token_id))
    teacher_full = source.chunk(None, 0, ids.shape[0])[0]
    assert torch.allclose(teacher_full.gather(-1, ids), logps, atol=1e-5)
    assert torch.equal(teacher_full.topk(8, -1).indices.sort(-1).values, ids.sort(-1).values)


def _losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["distill.top_k=32", "distill.loss=jsd"],
        ["distill.lmbda=1.0", "distill.max_new_tokens=8", "distill.loss=reverse_kl"],
    ],
    ids=["on_the_fly", "topk_jsd", "gkd_on_policy"],
)
def test_distill_lowers_the_divergence(tiny_dir, teacher_dir, small_data, tmp_path, extra):
    recipe = load_recipe(
        None,
        [
            f"model={tiny_dir}",
            f"data=[{small_data['sft']}]",
            f"distill.teacher={teacher_dir}",
            "train.micro_batch_size=8",
            "train.max_steps=12",
            "train.lr=3e-3",
            "train.warmup_steps=0",
            "log.tensorboard=false",
            *extra,
        ],
    )
    distill.run(recipe, output_dir=str(tmp_path / "run"))
    losses = _losses(tmp_path / "run")
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final") is not None


def test_teacher_with_another_tokenizer_is_one_line(tiny_dir, teacher_dir, small_data, tmp_path, capsys):
    other = shutil.copytree(teacher_dir, tmp_path / "other")
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = [t for t in vocab if not t.startswith("<|")][:2]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tok))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"model": str(tiny_dir), "data": [str(small_data["sft"])], "distill": {"teacher": str(other)}})
    )
    assert main(["distill", str(recipe), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "tokenizer differs" in err and len(err.splitlines()) == 1
    recipe.write_text(yaml.safe_dump({"model": str(tiny_dir), "data": [str(small_data["sft"])]}))
    assert main(["distill", str(recipe), "--output-dir", str(tmp_path / "run")]) == 2
    assert "needs distill.teacher" in capsys.readouterr().err


def test_on_policy_with_a_topk_cache_is_refused():
    from posttrain.errors import UserError

    with pytest.raises(UserError, match="cannot hold"):
        load_recipe(None, ["distill.lmbda=0.5", "distill.top_k=8"])


def test_on_policy_step_keeps_prompts_and_trains_on_student_samples(tiny_dir):
    from posttrain.data.batching import Example
    from posttrain.generation.backend import HFBackend
    from posttrain.stages.distill import OnPolicyMixture

    rows = [
        Example([0, 10, 11, 12, 13, 4], [-100, -100, -100, 12, 13, 4]),
        Example([0, 20, 21, 4], [-100, -100, 21, 4]),
    ]

    class FixedPlan:
        total_steps = 1

        def steps(self, start=0):
            yield [collate_padded(rows, 5)]

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    backend = HFBackend(model, load_tokenizer(str(tiny_dir)), batch_size=2, seed=0, show_progress=False)
    recipe = load_recipe(None, ["distill.lmbda=1.0", "distill.max_new_tokens=3"])
    (mb,) = next(OnPolicyMixture(FixedPlan(), backend, 5, recipe).steps())
    assert mb["input_ids"][0, :3].tolist() == [0, 10, 11] and mb["input_ids"][1, :2].tolist() == [0, 20]
    assert mb["labels"][0, :3].tolist() == [-100] * 3 and mb["labels"][1, :2].tolist() == [-100] * 2
    sampled = (mb["labels"] != -100).sum(dim=1).tolist()
    assert all(1 <= n <= 4 for n in sampled)  # up to 3 sampled tokens (+ the turn end when it stopped)
