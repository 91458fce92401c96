"""Judge-graded evaluation (MT-Bench style) against a scripted judge server: known ratings are
reproduced per turn and per category, and a reply with no rating is counted, not averaged in."""

import json
import math

import pytest

from posttrain.errors import UserError
from posttrain.eval.engine import run_task
from posttrain.eval.judge_grading import LocalGrader, parse_rating
from posttrain.eval.tasks.builtin import resolve_task
from tests.unit.eval.fakes import ScriptedBackend, json_server


@pytest.mark.parametrize(
    "reply, rating",
    [
        ("Good. Rating: [[7]]", 7.0),
        ("[[8.5]]", 8.5),
        ('format "[[5]]" ... so Rating: [[9]]', 9.0),
        ("Rating: [6]", 6.0),
        ("Rating: 4", 4.0),
        ("I give it 7/10.", 7.0),
        ("[[ 3 ]]", 3.0),
        ("no score here", None),
        ("[[11]]", None),
        ("[[0]]", None),
        ("", None),
    ],
)
def test_parse_rating(reply, rating):
    assert parse_rating(reply) == rating


ROWS = [
    {"question_id": 1, "category": "writing", "turns": ["Write alpha.", "Now shorter."]},
    {"question_id": 2, "category": "math", "turns": ["What is 2+2? beta"], "reference": ["4"]},
    {"question_id": 3, "category": "writing", "turns": ["Write gamma.", "More gamma."]},
]


def _verdict(prompt: str) -> str:
    """The scripted judge: known ratings, and no rating at all for gamma's first turn."""
    second_turn = "Conversation with User" in prompt
    if "beta" in prompt:
        return "Rating: [[3]]" if "[The Start of Reference Answer]\n4\n" in prompt else "[[1]]"
    if "gamma" in prompt:
        return "Excellent, [[10]]" if second_turn else "I cannot decide on this one."
    return "Explanation... Rating: [[6]]" if second_turn else "Rating: [[8]]"


JUDGE_PROMPTS: list[str] = []  # what the scripted judge read, in order (cleared per test)


@pytest.fixture()
def judge_url():
    """The scripted judge behind a real loopback server."""
    JUDGE_PROMPTS.clear()

    def reply(body, _headers):
        JUDGE_PROMPTS.append(body["messages"][-1]["content"])
        return 200, {"choices": [{"message": {"content": _verdict(JUDGE_PROMPTS[-1])}}]}

    with json_server(reply) as url:
        yield url


def _answer(prompt: str) -> str:
    """The evaluated model: a first answer naming its question, a second one after seeing it."""
    if "FIRST(" in prompt:
        return "SECOND after " + prompt.split("FIRST(", 1)[1].split(")", 1)[0]
    return "FIRST(" + next(w for w in ("alpha", "beta", "gamma") if w in prompt) + ")"


def _task_file(tmp_path, rows, **fields):
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"name": "mt", "kind": "judge_grade", "data": str(data), "max_new_tokens": 16, **fields}
    path = tmp_path / "mt.yaml"
    path.write_text(json.dumps(task))
    return path


def test_scripted_judge_scores_are_reproduced_and_unparsed_counted(tmp_path, tiny_model, judge_url):
    backend = ScriptedBackend(tiny_model[1], answer=_answer)
    result = run_task(resolve_task(str(_task_file(tmp_path, ROWS)), [f"judge.model={judge_url}"]), backend)
    values = result.values()
    assert values["score"] == pytest.approx((8 + 6 + 3 + 10) / 4)  # the unparsed reply is not a 0
    assert values["score_turn_1"] == pytest.approx((8 + 3) / 2)
    assert values["score_turn_2"] == pytest.approx((6 + 10) / 2)
    assert values["score_writing"] == pytest.approx((8 + 6 + 10) / 3)
    assert values["score_math"] == pytest.approx(3.0)  # graded against its reference answer
    assert math.isnan(values["score_coding"])
    assert values["unparsed"] == 1.0 and values["judgments"] == 5.0
    assert [s.extra["ratings"] for s in result.samples] == [[8.0, 6.0], [3.0], [None, 10.0]]
    # the second user turn followed the model's own first answer ...
    second = [backend._text(r.prompt) for r in backend.generated[3:]]
    assert len(second) == 2 and "FIRST(alpha)" in second[0] and "Now shorter." in second[0]
    assert result.samples[0].extra["answers"] == ["FIRST(alpha)", "SECOND after alpha"]
    # ... and the judge saw the whole conversation for turn 2
    turn2 = [p for p in JUDGE_PROMPTS if "alpha" in p and "Conversation with User" in p]
    assert len(turn2) == 1 and "FIRST(alpha)" in turn2[0] and "SECOND after alpha" in turn2[0]


def test_local_grader_and_rubric(tmp_path, tiny_model):
    judge_backend = ScriptedBackend(tiny_model[1], answer=lambda p: "Rating: [[4]]" if "Be terse." in p else "??")
    backend = ScriptedBackend(tiny_model[1], answer=_answer)
    task = resolve_task(str(_task_file(tmp_path, ROWS[:1], rubric="Be terse.")))
    result = run_task(task, backend, judge=LocalGrader(judge_backend))
    assert result.values()["score"] == 4.0 and result.values()["unparsed"] == 0.0


def test_bad_task_files_are_one_line(tmp_path, tiny_model):
    backend = ScriptedBackend(tiny_model[1], answer=_answer)
    with pytest.raises(UserError, match=r"row 1: .*no user turns"):
        run_task(resolve_task(str(_task_file(tmp_path, [{"category": "writing", "turns": []}]))), backend)
    with pytest.raises(UserError, match="category 'poetry' is not in the task's categories"):
        run_task(
            resolve_task(str(_task_file(tmp_path, [{"category": "poetry", "turns": ["x alpha"]}]))),
            backend,
            judge=LocalGrader(backend),
        )
