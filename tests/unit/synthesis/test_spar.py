"""SPaR: the judge's verdict parsing, the tree search's order and its stop at the judge's
acceptance (calls counted), and the whole pipeline against a scripted actor/refiner server."""

import json
import re

import pytest

from posttrain.cli import main
from posttrain.data.sources import load_records
from posttrain.synthesis.spar_search import (
    Judgment,
    SearchSettings,
    parse_judgment,
    tree_search,
    vote,
)
from tests.unit.synthesis.scripted import model_overrides, scripted_model


@pytest.mark.parametrize(
    "text, accepted, critique",
    [
        ("Misses the word limit.\nVerdict: REJECT", False, "Misses the word limit."),
        ("All good.\n**Verdict:** Accept", True, "All good."),
        ("verdict = rejected (too long)", False, ""),
        ("Verdict: ACCEPT was considered, but no.\nVerdict: reject", False, "Verdict: ACCEPT was considered, but no."),
        ("It follows the instruction.\nYes.", True, "It follows the instruction."),
        ("I am not sure what to say.", None, "I am not sure what to say."),
        ("", None, ""),
    ],
)
def test_parse_judgment(text, accepted, critique):
    judgment = parse_judgment(text)
    assert (judgment.accepted, judgment.critique) == (accepted, critique)


def test_vote_is_the_majority_of_readable_verdicts():
    yes, no, unreadable = Judgment(True, "fine", "a"), Judgment(False, "too long", "b"), Judgment(None, "", "c")
    assert vote([no, yes, yes, unreadable]) is yes
    assert vote([yes, no]) is no  # a tie rejects
    assert vote([unreadable, no]) is no and vote([unreadable]).accepted is None


def search(strategy, accept, branching=2, max_depth=3, budget=100):
    """Responses are tree paths ('r', 'r.1', 'r.2.1', ...); the judge accepts exactly `accept`."""
    calls = {"refine": [], "judge": []}

    def refine(node, count):
        calls["refine"].append(node.response)
        return [f"{node.response}.{k + 1}" for k in range(count)]

    def judge(responses):
        calls["judge"] += responses
        return [Judgment(r == accept, f"critique of {r}", "") for r in responses]

    result = tree_search(
        "r", Judgment(False, "", ""), refine, judge, SearchSettings(strategy, max_depth, branching, budget)
    )
    return result, calls


def test_bfs_stops_at_the_accepted_node():
    result, calls = search("bfs", "r.2.1")
    assert calls["refine"] == ["r", "r.1", "r.2"]  # level by level
    assert calls["judge"] == ["r.1", "r.2", "r.1.1", "r.1.2", "r.2.1", "r.2.2"]  # nothing after r.2's children
    assert result.nodes[result.accepted].response == "r.2.1" and result.stopped_by == "accepted"
    assert (result.expansions, result.refinements, result.judgments) == (3, 6, 6)
    assert result.nodes[result.nodes[result.accepted].parent].response == "r.2"


def test_dfs_goes_down_first_and_stops_at_the_accepted_node():
    result, calls = search("dfs", "r.2.1")
    assert calls["refine"] == ["r", "r.1", "r.1.1", "r.1.2", "r.2"]  # depth-3 nodes are leaves
    assert len(calls["judge"]) == 10 and calls["judge"][-2:] == ["r.2.1", "r.2.2"]
    assert result.nodes[result.accepted].response == "r.2.1"


def test_depth_and_budget_limits():
    result, calls = search("bfs", "never", max_depth=2)
    assert calls["refine"] == ["r", "r.1", "r.2"] and result.accepted is None and result.stopped_by == "depth"
    result, calls = search("bfs", "never", budget=3)
    assert calls["judge"] == ["r.1", "r.2", "r.1.1"] and result.stopped_by == "budget"


class Scripted:
    """i1: the judge accepts only r.2.1; i2: it accepts the actor's answer; i3: it writes no verdict."""

    def __init__(self):
        self.children = {}

    def __call__(self, prompt):
        if prompt.startswith("Check whether"):
            instruction = re.search(r"# Instruction\n(.*?)\n\n# Response", prompt, re.S).group(1)
            response = re.search(r"# Response\n(.*?)\n\nList each", prompt, re.S).group(1)
            if instruction == "i3":
                return "Hmm."
            ok = (instruction == "i1" and response == "r.2.1") or instruction == "i2"
            return f"Notes on {response}.\nVerdict: {'ACCEPT' if ok else 'REJECT'}"
        if prompt.startswith("Improve a response"):
            parent = re.search(r"# Response\n(.*?)\n\n# Critique", prompt, re.S).group(1)
            assert f"Notes on {parent}." in prompt  # refined with the parent's critique
            self.children[parent] = self.children.get(parent, 0) + 1
            return f"{parent}.{self.children[parent]}"
        return "r"


@pytest.mark.parametrize("judge_samples", [1, 3])
def test_pipeline_writes_pairs_and_refiner_data(tmp_path, judge_samples):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("i1", "i2", "i3")))
    out = tmp_path / "out"
    with scripted_model(Scripted()) as (url, chat):
        sets = [
            *model_overrides("actor", url),
            "actor.concurrency=1",
            f"prompts={prompts}",
            "branching=2",
            f"judge_samples={judge_samples}",
        ]
        assert main(["synth", "spar", "--out", str(out), *sum((["--set", s] for s in sets), [])]) == 0
    assert chat.count("Improve a response") == 6 and chat.count("Check whether") == (3 + 6) * judge_samples
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert [(p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("i1", "r.2.1", "r")
    ]
    assert len(load_records(out / "pairs.jsonl", "preference").records) == 1
    refiner = [json.loads(line) for line in (out / "refiner_sft.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in refiner].count("judgment") == 7 + 1  # i1's tree (7 nodes) + i2's answer; i3 unreadable
    [refinement] = [r for r in refiner if r["kind"] == "refinement"]
    assert "# Response\nr.2\n" in refinement["messages"][0]["content"]
    assert refinement["messages"][1]["content"] == "r.2.1"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["removed_by"] == {"actor_accepted": 1, "judge_unparseable": 1}
    assert manifest["counts"]["judge_calls"] == 9 * judge_samples and manifest["counts"]["refine_calls"] == 6
    assert manifest["counts"]["judge_unparseable"] == 1


def test_nothing_refined_fails_and_missing_actor_is_one_line(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "i2"}) + "\n")
    with scripted_model(Scripted()) as (url, _):
        sets = [*model_overrides("actor", url), f"prompts={prompts}"]
        assert main(["synth", "spar", "--out", str(tmp_path / "o"), *sum((["--set", s] for s in sets), [])]) == 2
    assert "no refinement pairs left (actor_accepted removed 1)" in capsys.readouterr().err
    assert main(["synth", "spar", "--out", str(tmp_path / "o2"), "--set", f"prompts={prompts}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_unreachable_endpoint_is_one_line_before_any_output(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "i1"}) + "\n")
    sets = [f"prompts={prompts}", "actor.model=m", f"actor.base_url=http://127.0.0.1:{port}/v1", "actor.max_retries=0"]
    assert main(["synth", "spar", "--out", str(tmp_path / "o"), *sum((["--set", s] for s in sets), [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("posttrain: error: cannot reach http://127.0.0.1:") and "\n" not in err
    assert not (tmp_path / "o").exists()
