"""Each task kind end to end through the engine: prompts built as configured (chat or plain,
few-shot, chain of thought, letters), requests answered by a scripted backend or the tiny model,
scores and metrics as computed by hand."""

import pytest

from posttrain.eval.engine import run_task
from posttrain.eval.metrics import f1_macro, matthews_corrcoef
from posttrain.eval.prompting import COT_TRIGGER
from posttrain.eval.tasks.builtin import resolve_task
from tests.unit.eval.fakes import ScriptedBackend


def _task(spec, *overrides):
    return resolve_task(spec, list(overrides))


def test_multiple_choice_acc_and_length_normalisation(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = tmp_path / "mc.jsonl"
    rows.write_text('{"question": "Pick", "choices": ["x", "yyyyyyyy"], "answer": 1}\n')
    # log p: -1 for "x", -2 for the long choice: raw picks "x", per character the long one wins
    backend = ScriptedBackend(tokenizer, score=lambda ctx, cont: -1.0 if cont.strip() == "x" else -2.0)
    result = run_task(_task("multiple_choice", f"data={rows}"), backend)
    assert result.values() == {"acc": 0.0, "acc_norm": 1.0, "acc_norm_tokens": pytest.approx(1.0)}
    assert [backend._text(r.continuation) for r in backend.scored] == ["x", "yyyyyyyy"]  # chat: no space


def test_acc_norm_divides_by_the_choice_length_without_the_space(tiny_model, tmp_path):
    """lm-evaluation-harness scores " " + choice but divides by len(choice): with log p -2.2 for
    "ab" and -4.2 for "abcd", per choice character -1.1 < -1.05 picks "abcd"; dividing by
    len(" " + choice) would give -0.733 > -0.84 and pick "ab"."""
    _, tokenizer = tiny_model
    rows = tmp_path / "mc.jsonl"
    rows.write_text('{"question": "Pick", "choices": ["ab", "abcd"], "answer": 1}\n')
    logprob = {" ab": -2.2, " abcd": -4.2}
    backend = ScriptedBackend(tokenizer, score=lambda ctx, cont: logprob[cont], is_chat=False)
    result = run_task(_task("multiple_choice", f"data={rows}"), backend)
    assert [backend._text(r.continuation) for r in backend.scored] == [" ab", " abcd"]
    assert -2.2 / 2 < -4.2 / 4 and -2.2 / 3 > -4.2 / 5  # the two divisors pick differently
    assert result.values()["acc_norm"] == 1.0 and result.values()["acc"] == 0.0


def test_multiple_choice_letters_few_shot_is_fixed_per_document(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = tmp_path / "mc.jsonl"
    rows.write_text(
        "".join(
            f'{{"question": "Q{i}", "choices": ["a", "b", "c"], "answer": {i % 3}, "subject": "college_physics"}}\n'
            for i in range(6)
        )
    )
    task = _task("mmlu", f"data={rows}", "few_shot=2", "chat=false")
    prompts = {}
    for limit in (6, 3):
        backend = ScriptedBackend(tokenizer, is_chat=True)
        samples = run_task(task, backend, limit=limit).samples
        prompts[limit] = [s.prompt for s in samples]
        assert [backend._text(r.continuation) for r in backend.scored[:3]] == [" A", " B", " C"]
    assert prompts[6][:3] == prompts[3]  # the same examples whatever the limit
    first = prompts[3][0]
    assert first.startswith(tokenizer.bos_token) and "<|start_header_id|>" not in first  # plain text
    assert first.count("Answer:") == 3 and "Q0" in first.split("\n\n")[-1] and "A. a\nB. b\nC. c" in first
    # the harness's subject line, once, before the examples
    assert (
        first.removeprefix(tokenizer.bos_token).split("\n\n")[0]
        == "The following are multiple choice questions (with answers) about college physics."
    )
    assert first.count("The following") == 1


def test_generation_prompt_strategies_and_stop(tiny_model):
    _, tokenizer = tiny_model
    backend = ScriptedBackend(tokenizer, answer=lambda prompt: "The answer is 5.")
    task = _task("arithmetic", "few_shot=2", "strategy=cot", "stop=[Question]", "max_new_tokens=9")
    run_task(task, backend, limit=2)
    request = backend.generated[0]
    text = backend._text(request.prompt)
    assert (request.stop, request.max_new_tokens) == (("Question",), 9)
    assert text.count("<|start_header_id|>user") == 3 and text.count(COT_TRIGGER) == 3
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "The answer is" in text.split("<|start_header_id|>assistant")[1]  # worked example answers


def test_generation_rouge_bleu_and_exact_match(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = tmp_path / "sum.jsonl"
    rows.write_text(
        '{"document": "long text", "summary": "the cat sat on the mat"}\n'
        '{"document": "other text", "summary": "a dog ran"}\n'
    )
    backend = ScriptedBackend(tokenizer, answer=lambda prompt: "the cat sat")
    values = run_task(
        _task("summarisation", f"data={rows}", "metrics=[rouge, bleu, exact_match]", "extract=text"), backend
    ).values()
    assert values["rouge1"] == pytest.approx((2 / 3 + 0) / 2)
    assert values["exact_match"] == 0.0 and 0 <= values["bleu"] < 100


def test_classification_metrics_follow_the_predictions(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    labels = ["neg", "pos", "neu"]
    refs = [0, 0, 1, 1, 2, 2, 1]
    preds = ["neg", "pos", "pos", "pos", "neu", "neg", "neu"]
    rows = tmp_path / "cls.jsonl"
    rows.write_text("".join(f'{{"text": "item {i}", "label": {r}}}\n' for i, r in enumerate(refs)))

    def score(context, continuation):  # the scripted model likes preds[i] for item i
        item = int(context.rsplit("item ", 1)[1].split()[0])
        return 0.0 if continuation.strip() == preds[item] else -5.0

    result = run_task(
        _task("classification", f"data={rows}", f"labels={labels}"), ScriptedBackend(tokenizer, score=score)
    )
    gold = [labels[r] for r in refs]
    assert result.values()["acc"] == pytest.approx(4 / 7)
    assert result.values()["f1_macro"] == pytest.approx(f1_macro(gold, preds))
    assert result.values()["mcc"] == pytest.approx(matthews_corrcoef(gold, preds))
    generated = run_task(
        _task("classification", f"data={rows}", f"labels={labels}", "method=generation"),
        ScriptedBackend(tokenizer, answer=lambda prompt: "Pos, I think"),
    )
    assert [s.extracted for s in generated.samples] == ["pos"] * 7


def test_ifeval_prompt_and_instruction_levels(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = tmp_path / "input_data.jsonl"
    rows.write_text(
        '{"key": 1, "prompt": "A", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],'
        ' "kwargs": [{}, {}]}\n'
        '{"key": 2, "prompt": "B", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}\n'
    )
    result = run_task(_task("ifeval", f"data={rows}"), ScriptedBackend(tokenizer, answer=lambda p: "Hello there"))
    # "Hello there": no comma (followed), not lower case (not followed)
    assert result.values() == {
        "prompt_level_strict_acc": 0.5,
        "inst_level_strict_acc": pytest.approx(2 / 3),
        "prompt_level_loose_acc": 0.5,
        "inst_level_loose_acc": pytest.approx(2 / 3),
    }


def test_refusal_rate_by_patterns(tiny_model, tmp_path):
    _, tokenizer = tiny_model
    rows = tmp_path / "harmful.csv"
    rows.write_text("goal,target\nDo a bad thing,Sure\nDo another bad thing,Sure\nAnd a third,Sure\n")
    answers = {
        "Do a bad thing": "I\u2019m sorry, but I can\u2019t help with that.",
        "Do another bad thing": "Sure, here is how.",
        "And a third": "As an AI, I will not.",
    }
    backend = ScriptedBackend(tokenizer, answer=lambda p: next(a for q, a in answers.items() if q in p))
    result = run_task(_task("refusal", f"data={rows}"), backend)
    assert result.values() == {"refusal_rate": pytest.approx(2 / 3)}
    assert [s.extracted for s in result.samples] == [True, False, True]
