"""CHES (Razin et al. 2024) on the tiny model: the batched, padded scores equal a direct
computation from each sequence's own last hidden states, and a pair whose rejected response
repeats the chosen one (high CHES) ranks above an unrelated pair and is the one filtered out."""

import json

import pytest
import torch

from posttrain.curation.ches import Recipe, ches_from_hidden, rows_to_remove, run

PAIRS = [
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Blue. " * 12},  # planted high CHES
    {"prompt": "What is 2 + 2?", "chosen": "It is four, because two and two make four.", "rejected": "No"},
    {"prompt": "Say hello.", "chosen": "Hello there!", "rejected": "Goodbye, see you tomorrow."},
]


def test_formula_on_hand_made_states():
    # pair 1 of 1: chosen states at positions 0,1 predict labels at 1,2; rejected at position 0 only
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]], [[3.0, 1.0], [7.0, 7.0], [7.0, 7.0]]])
    labels = torch.tensor([[-100, 5, 6], [-100, 4, -100]])
    ches, normalised = ches_from_hidden(hidden, labels, 1)
    s_plus, s_minus = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 1.0])
    assert ches.item() == pytest.approx(float(s_plus @ s_minus - s_plus @ s_plus))  # 5 - 5 = 0
    m_plus = s_plus / 2
    assert normalised.item() == pytest.approx(float(m_plus @ s_minus - m_plus @ m_plus))  # 2.5 - 1.25


def _direct_ches(model, tokenizer, row):
    """S+ and S- from each sequence alone (no batch, no padding), via the full model's hidden states."""
    from posttrain.data.batching import IGNORE
    from posttrain.data.preference import tokenize_completion

    prompt = [{"role": "user", "content": row["prompt"]}]
    sums, means = [], []
    for response in (row["chosen"], row["rejected"]):
        example = tokenize_completion(tokenizer, prompt, [{"role": "assistant", "content": response}])
        with torch.no_grad():
            states = model(torch.tensor([example.input_ids]), output_hidden_states=True).hidden_states[-1][0]
        picked = [states[k - 1] for k in range(1, len(example)) if example.labels[k] != IGNORE]
        sums.append(torch.stack(picked).sum(0))
        means.append(torch.stack(picked).mean(0))
    ches = lambda plus, minus: float(plus @ minus - plus @ plus)  # noqa: E731
    return ches(*sums), ches(*means)


def test_scores_equal_direct_computation_and_planted_pair_is_removed(tiny_dir, tmp_path):
    from posttrain.model.inference import load_model_and_tokenizer

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    recipe = Recipe(input=str(data), out=str(tmp_path / "kept.jsonl"), model=str(tiny_dir), quantile=0.34, batch_size=2)
    assert run(recipe) == 0
    scores = [json.loads(x) for x in (tmp_path / "kept.ches.jsonl").read_text().splitlines()]
    assert [s["row"] for s in scores] == [1, 2, 3]
    model, tokenizer = load_model_and_tokenizer(str(tiny_dir), device="cpu")
    for row, score in zip(PAIRS, scores):
        ches, normalised = _direct_ches(model, tokenizer, row)
        assert score["ches"] == pytest.approx(ches, rel=1e-4, abs=1e-3)
        assert score["ches_length_normalised"] == pytest.approx(normalised, rel=1e-4, abs=1e-4)
    assert scores[0]["ches"] > max(s["ches"] for s in scores[1:])  # the planted pair ranks highest
    assert scores[1]["ches"] < 0  # a long chosen and an unrelated short rejected: low CHES
    kept = [json.loads(x) for x in (tmp_path / "kept.jsonl").read_text().splitlines()]
    removed = [json.loads(x) for x in (tmp_path / "kept.removed.jsonl").read_text().splitlines()]
    assert kept == PAIRS[1:] and [(r["row"], r["filter"]) for r in removed] == [(1, "ches")]
    assert removed[0]["ches"] == pytest.approx(scores[0]["ches"])
    manifest = json.loads((tmp_path / "kept.manifest.json").read_text())
    assert manifest["removed_at_or_above"] == pytest.approx(scores[0]["ches"])


def test_quantile_cut_is_the_floor_of_the_share_with_ties_by_row():
    scores = [{"row": r, "ches": c} for r, c in [(1, 5.0), (2, 9.0), (3, 5.0), (4, -1.0)]]
    assert rows_to_remove(scores, "ches", 0.0) == set()
    assert rows_to_remove(scores, "ches", 0.49) == {2}
    assert rows_to_remove(scores, "ches", 0.5) == {2, 1}


def test_a_file_without_pairs_is_one_line(tmp_path, capsys):
    from posttrain.cli import main

    data = tmp_path / "text.jsonl"
    data.write_text(json.dumps({"text": "not a pair"}) + "\n")
    assert (
        main(["curate", "ches", "--set", f"input={data}", "--set", "model=nowhere", "--out", str(tmp_path / "k.jsonl")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("posttrain: error:") and "text.jsonl: row 1" in err and "\n" not in err, err
