"""Vocabulary extension end to end on the tiny model and the synthetic second language: fewer
tokens per word, an embeddings-only stage that lowers held-out bits per byte, and LEP into an
instruct model (bench/vocab_extension.py runs the same pipeline at README scale)."""

import json

import pytest

from posttrain.cli import main
from posttrain.config.recipe import load_recipe
from posttrain.data.synth.second_language import words_per_text
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.generation.backend import HFBackend
from posttrain.model.inference import load_model_and_tokenizer
from posttrain.stages import pretrain, sft


def _bits_per_byte(model_dir, data):
    model, tok = load_model_and_tokenizer(str(model_dir))
    task = resolve_task("perplexity", [f"data={data}"])
    return run_task(task, HFBackend(model, tok, batch_size=16, show_progress=False)).values()["bits_per_byte"]


def _tokens_per_word(model_dir, texts):
    _, tok = load_model_and_tokenizer(str(model_dir))
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts) / words_per_text(texts)


def _train(stage, model, data, steps, out, *extra):
    recipe = load_recipe(
        None,
        [
            f"model={model}",
            f"data=[{data}]",
            "train.micro_batch_size=16",
            f"train.max_steps={steps}",
            "train.lr=3e-3",
            "train.warmup_steps=2",
            *extra,
        ],
    )
    stage.run(recipe, output_dir=str(out))
    return out / "final"


def test_collision_is_one_line(capsys, tiny_dir, tmp_path):
    listed = tmp_path / "tokens.txt"
    listed.write_text("<|eot_id|>\nskåkhar\n")
    assert main(["surgery", "extend-vocab", str(tiny_dir), "--tokens", str(listed), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"posttrain: error: {listed}: 1 new token(s) already in the vocabulary, e.g. '<|eot_id|>'"


@pytest.mark.slow
def test_extend_train_embeddings_and_propagate(tiny_dir, small_data, tmp_path):
    lang = tmp_path / "lang"
    assert main(["surgery", "make-language", "--out", str(lang), "--train", "600", "--heldout", "40"]) == 0
    held_texts = [json.loads(line)["text"] for line in (lang / "heldout.jsonl").read_text().splitlines()]
    held = lang / "heldout.jsonl"
    instruct = _train(sft, tiny_dir, small_data["sft"], 10, tmp_path / "instruct")
    ext = tmp_path / "ext"
    assert (
        main(
            [
                "surgery",
                "extend-vocab",
                str(tiny_dir),
                "--corpus",
                str(lang / "train.jsonl"),
                "--num-tokens",
                "100",
                "--out",
                str(ext),
            ]
        )
        == 0
    )
    before, after = _tokens_per_word(tiny_dir, held_texts), _tokens_per_word(ext, held_texts)
    assert after < 0.6 * before, (before, after)

    bpb_ext = _bits_per_byte(ext, held)
    adapted = _train(pretrain, ext, lang / "train.jsonl", 30, tmp_path / "adapted", "adapter.kind=embeddings")
    bpb_adapted = _bits_per_byte(adapted, held)
    assert bpb_adapted < bpb_ext - 0.5, (bpb_ext, bpb_adapted)

    lep = tmp_path / "lep"
    assert (
        main(
            [
                "surgery",
                "lep",
                "--base",
                str(tiny_dir),
                "--adapted",
                str(adapted),
                "--instruct",
                str(instruct),
                "--method",
                "overlap",
                "--out",
                str(lep),
            ]
        )
        == 0
    )
    assert _tokens_per_word(lep, held_texts) == after
    bpb_instruct, bpb_lep = _bits_per_byte(instruct, held), _bits_per_byte(lep, held)
    print(
        f"tokens/word {before:.2f} -> {after:.2f}; bits/byte ext {bpb_ext:.3f} -> adapted {bpb_adapted:.3f}; "
        f"instruct {bpb_instruct:.3f} -> LEP overlap {bpb_lep:.3f}"
    )
    assert bpb_lep < bpb_instruct - 1.0
