"""Adaptive inference-time compute (self-evaluation): the win-or-tie targets by hand, the SFT rows
(only the answer token trained), P(no better) as the full-vocabulary softmax on the tiny model,
and adaptive sampling on a scripted backend whose answers and self-evaluations are known."""

import math
import re

import pytest
import torch
from transformers import AutoTokenizer

from posttrain.cli import main
from posttrain.data.chat import tokenize_conversation
from posttrain.data.records import to_record
from posttrain.errors import UserError
from posttrain.eval.adaptive import chosen_index
from posttrain.eval.engine import run_task
from posttrain.eval.self_eval import (
    SELF_EVAL_QUESTION,
    no_better_probabilities,
    win_or_tie_targets,
)
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.eval.voting import VotingOptions
from posttrain.generation.backend import Completion
from posttrain.generation.prompter import Prompter
from posttrain.synthesis.self_eval import self_eval_rows
from tests.unit.data.test_chat import trained_spans
from tests.unit.eval.fakes import ScriptedBackend, first_documents


def test_win_or_tie_targets_by_hand():
    # a 0/1 verifier: a correct answer is never beaten; a wrong one is beaten by each correct other
    assert win_or_tie_targets([1, 0, 1]) == [[True, True], [False, False], [True, True]]
    assert win_or_tie_targets([0.2, 0.5, 0.9]) == [[False, False], [True, False], [True, True]]
    assert win_or_tie_targets([0.5, 0.5]) == [[True], [True]]  # a tie is no better


def test_self_eval_rows_train_only_the_answer(tiny_dir):
    rows = [
        (1, {"prompt": "What is 2 + 3?", "completions": [{"text": "5", "score": 1.0}, {"text": "6", "score": 0.0}]}),
        (2, {"prompt": [{"role": "user", "content": "Hi"}], "completions": [{"text": "x", "score": 1.0}]}),
    ]
    out, counts = self_eval_rows(rows, "scored.jsonl")
    assert counts == {"prompts": 1, "too_few": 1, "no_better": 1, "better": 1}
    assert [r["messages"][-1]["content"] for r in out] == ["No.", "Yes."]  # "5" beats "6"; "6" is beaten
    messages = out[1]["messages"]
    assert messages[1] == {"role": "assistant", "content": "6", "weight": 0}
    assert messages[2] == {"role": "user", "content": SELF_EVAL_QUESTION}
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    _, labels = tokenize_conversation(tokenizer, to_record({"messages": messages}, "conversation").messages)
    assert [tokenizer.decode(span) for span in trained_spans(labels)] == ["Yes.<|eot_id|>"]
    with pytest.raises(UserError, match="row 7: field 'completions': every completion needs a numeric 'score'"):
        self_eval_rows([(7, {"prompt": "p", "completions": [{"text": "a"}, {"text": "b", "score": 1}]})], "s.jsonl")


def test_p_no_better_is_the_full_vocabulary_softmax(tiny_backend):
    model, tokenizer = tiny_backend.model, tiny_backend.tokenizer
    prompter = Prompter(tokenizer, tiny_backend.is_chat)
    conversations = [[("What is 2 + 3?", "The answer is 5.")], [("Q1", "A1"), ("What is 7 - 4?", "It is 2.")]]
    got = no_better_probabilities(tiny_backend, prompter, conversations)
    no_id = prompter.continuation_ids("No.")[0]
    for turns, p in zip(conversations, got):
        ids = prompter.prompt(SELF_EVAL_QUESTION, turns)
        with torch.no_grad():
            probs = model(input_ids=torch.tensor([ids])).logits[0, -1].float().softmax(-1)
        assert p == pytest.approx(probs[no_id].item(), rel=1e-4)


class RoundsBackend(ScriptedBackend):
    """Answers each document's r-th request with its r-th scripted answer; self-evaluates a response
    by a table; records the seed of every round."""

    def __init__(self, tokenizer, scripts: dict[str, list[str]], p_no: dict[str, float]):
        self.calls: dict[str, int] = {}
        self.seeds: list[int] = []
        super().__init__(tokenizer, self._answer, self._score)
        self.scripts, self.p_no = scripts, p_no

    def _answer(self, prompt: str) -> str:
        question = next(q for q in self.scripts if q in prompt)
        self.calls[question] = self.calls.get(question, 0) + 1
        return self.scripts[question][self.calls[question] - 1]

    def _score(self, context: str, continuation: str) -> float:
        assert "No.".startswith(continuation) and SELF_EVAL_QUESTION in context  # the first token of "No."
        return math.log(self.p_no[re.findall(r"The answer is -?\d+\.", context)[-1]])

    def complete(self, requests, desc="", seed=None, logprobs=False):
        self.seeds.append(seed)
        return [Completion(text, "stop", len(text.split())) for text in self.generate(requests, desc)]


def test_adaptive_sampling_stops_when_the_model_says_no_better(tiny_dir):
    docs = first_documents("arithmetic", 3)
    right = [f"The answer is {d['reference']}." for d in docs]
    scripts = {
        docs[0]["prompt"]: [right[0]],  # confident at once: one sample
        docs[1]["prompt"]: ["The answer is -1.", "The answer is -2.", right[1]],  # the third closes it
        docs[2]["prompt"]: ["The answer is -1.", "The answer is -2.", "The answer is -1.", "The answer is -1."],
    }
    p_no = {**{r: 0.9 for r in right}, "The answer is -1.": 0.3, "The answer is -2.": 0.4}
    backend = RoundsBackend(AutoTokenizer.from_pretrained(tiny_dir), scripts, p_no)
    task = resolve_task("arithmetic")
    result = run_task(task, backend, limit=3, seed=5, voting=VotingOptions(4, temperature=0.8, adaptive=0.5))
    assert [s.scores["samples"] for s in result.samples] == [1, 3, 4]
    assert [s.scores["acc"] for s in result.samples] == [1, 1, 0]
    assert [s.scores["first_acc"] for s in result.samples] == [1, 0, 0]
    assert result.samples[2].output == "The answer is -2."  # the highest P(no better) of the four
    assert result.samples[1].scores["tokens"] == 12  # 4 words x 3 samples (the fake counts words)
    assert backend.seeds == [5, 6, 7, 8] and len(backend.scored) == 1 + 3 + 4
    values = result.values()
    assert values["samples"] == pytest.approx(8 / 3) and values["acc"] == pytest.approx(2 / 3)
    fixed = run_task(
        task,
        RoundsBackend(backend.tokenizer, scripts, p_no),
        limit=2,
        seed=5,
        voting=VotingOptions(1, temperature=0.8, adaptive=1.0),
    )  # N = 1: the first sample
    assert [s.scores["samples"] for s in fixed.samples] == [1, 1]


def test_chosen_index_first_among_equals():
    assert chosen_index([0.2, 0.7, 0.7]) == 1 and chosen_index([0.5]) == 0


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--adaptive", "0.5"], "--adaptive needs --samples N"),
        (["--samples", "4", "--temperature", "0.8", "--adaptive", "1.5"], "between 0 and 1"),
        (["--samples", "4", "--adaptive", "0.5", "--best-of", "math"], "--best-of does not apply with --adaptive"),
    ],
)
def test_adaptive_bad_flags_are_one_line(args, problem, capsys):
    assert main(["eval", "tiny", "--tasks", "arithmetic", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert problem in err and len(err.splitlines()) == 1
