"""Length, language and perplexity filters: which rows each removes, the perplexity formula
against the model's own loss, and the per-filter counts in the manifest."""

import json
import math

import pytest

from posttrain.cli import main
from tests.unit.curation.synthetic import chat, read_jsonl, write_jsonl

ENGLISH = [
    "The weather is lovely today and we are going for a long walk in the park.",
    "Please explain how photosynthesis works in green plants, step by step.",
    "My favourite book is about a detective who solves crimes in London.",
]
FRENCH = [
    "Le chat dort sur le canapé pendant que nous préparons le dîner ce soir.",
    "Pouvez-vous m'expliquer comment fonctionne la photosynthèse chez les plantes ?",
]
GERMAN = ["Der Zug nach Berlin hat heute leider eine Verspätung von zwanzig Minuten."]


def _filter(tmp_path, *settings):
    return main(
        [
            "curate",
            "filter",
            "--set",
            f"input={tmp_path / 'in.jsonl'}",
            "--out",
            str(tmp_path / "out.jsonl"),
            *[arg for s in settings for arg in ("--set", s)],
        ]
    )


def test_length_and_language_filters_remove_what_they_should(tmp_path):
    rows = [chat(t, "Sure, here it is.") for t in ENGLISH + FRENCH + GERMAN] + [chat("hi", "ok"), chat("x" * 500)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    assert _filter(tmp_path, "text=prompt", "min_chars=10", "max_chars=300", "languages=[en]") == 0
    report = {r["row"]: r for r in read_jsonl(tmp_path / "out.removed.jsonl")}
    assert {n: r["filter"] for n, r in report.items()} == {
        4: "language",
        5: "language",
        6: "language",
        7: "length_chars",
        8: "length_chars",
    }
    assert (report[4]["language"], report[6]["language"], report[7]["chars"]) == ("fr", "de", 2)
    assert read_jsonl(tmp_path / "out.jsonl") == rows[:3]
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    assert manifest["counts"]["removed_by"] == {"language": 3, "length_chars": 2}


def test_token_length_filter_counts_tokenizer_tokens(tmp_path, tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    counts = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in ENGLISH]
    limit = sorted(counts)[1]
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in ENGLISH])
    assert _filter(tmp_path, f"tokenizer={tiny_dir}", f"max_tokens={limit}") == 0
    assert [r["tokens"] for r in read_jsonl(tmp_path / "out.removed.jsonl")] == [c for c in counts if c > limit]


def test_perplexity_is_exp_of_the_models_mean_token_loss_and_padding_free(tiny_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.curation.filter import perplexities

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_dir).eval(), AutoTokenizer.from_pretrained(tiny_dir)
    texts = ENGLISH + ["a b"]
    batched = perplexities(model, tok, texts, max_tokens=64)
    for text, ppl in zip(texts, batched):
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            loss = model(ids, labels=ids).loss  # mean NLL of tokens 1..T-1
        assert ppl == pytest.approx(math.exp(loss.item()), rel=1e-4)
        assert perplexities(model, tok, [text], max_tokens=64)[0] == pytest.approx(ppl, rel=1e-4)


def test_perplexity_threshold_removes_exactly_the_rows_above_it(tmp_path, tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.curation.filter import perplexities

    texts = ENGLISH + FRENCH + GERMAN
    scores = perplexities(
        AutoModelForCausalLM.from_pretrained(tiny_dir).eval(),
        AutoTokenizer.from_pretrained(tiny_dir),
        texts,
        max_tokens=1024,
    )
    # between two scores: the filter batches rows differently, so a score may move in the last bits
    threshold = sum(sorted(scores)[3:5]) / 2
    write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    assert _filter(tmp_path, f"perplexity_model={tiny_dir}", f"max_perplexity={threshold}", "batch_size=4") == 0
    removed = read_jsonl(tmp_path / "out.removed.jsonl")
    assert [r["row"] for r in removed] == [i + 1 for i, s in enumerate(scores) if s > threshold]
    assert [r["perplexity"] for r in removed] == pytest.approx([s for s in scores if s > threshold], rel=1e-3)


def test_everything_removed_exits_2_naming_each_filter(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [chat(FRENCH[0]), chat("hi")])
    assert _filter(tmp_path, "min_chars=5", "languages=[en]", "text=prompt") == 2
    err = capsys.readouterr().err
    assert "every row was removed (2 rows; removed by: language 1, length_chars 1)" in err


@pytest.mark.parametrize(
    "settings, message",
    [
        ([], "no filter set"),
        (["max_perplexity=10"], "need perplexity_model"),
        (["max_tokens=10"], "need tokenizer"),
    ],
)
def test_recipe_mistakes_are_one_line(tmp_path, capsys, settings, message):
    write_jsonl(tmp_path / "in.jsonl", [chat("hello")])
    assert _filter(tmp_path, *settings) == 2
    assert message in capsys.readouterr().err
