"""SPaR's judge and its tree search of refinements (Cheng et al. 2024, "SPaR: Self-Play with
Tree-Search Refinement to Improve Instruction-Following"), as pure logic over two callables, so
the search's order and stopping rule are tested without a model.

The refiner judges a response (JUDGE_PROMPT: a critique, then 'Verdict: ACCEPT' or 'Verdict:
REJECT'; with judge_samples > 1 the majority verdict of that many sampled judgments, as SPaR's
self-consistent judge); a rejected response is the root of a tree whose children are refinements of their
parent given the parent's critique (REFINE_PROMPT), each judged in turn. Expanding a node asks
for `branching` refinements at once and judges them in one call; the search stops after the
first expansion holding an accepted child (the first accepted child in order is the result), or
when `max_depth`, or the `budget` of refinements per prompt, is reached. BFS expands the tree
level by level (the paper's default), DFS follows the first child down to max_depth before its
siblings. The prompts are this project's own wording.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

JUDGE_PROMPT = (
    "Check whether a response follows every requirement of an instruction.\n\n# Instruction\n"
    "{instruction}\n\n# Response\n{response}\n\nList each requirement the response misses or "
    "breaks, briefly, or say that it meets them all. Then end with a line 'Verdict: ACCEPT' if it "
    "follows every requirement, or 'Verdict: REJECT' if it does not."
)
REFINE_PROMPT = (
    "Improve a response so that it follows every requirement of its instruction.\n\n# Instruction\n"
    "{instruction}\n\n# Response\n{response}\n\n# Critique\n{critique}\n\nRewrite the response to fix "
    "what the critique points out, changing nothing else. Write only the improved response."
)
_VERDICT = re.compile(r"verdict\s*[:\-=]?\s*[*_`\"']*\s*(accept(?:ed)?|reject(?:ed)?|pass|fail|yes|no)\b", re.I)
_BARE = {
    "accept": True,
    "accepted": True,
    "pass": True,
    "yes": True,
    "reject": False,
    "rejected": False,
    "fail": False,
    "no": False,
}


@dataclass
class Judgment:
    accepted: bool | None  # None: the verdict could not be read
    critique: str
    text: str


def parse_judgment(text: str) -> Judgment:
    """The last 'Verdict: X' (X in accept/reject, pass/fail, yes/no, any case, markdown allowed),
    else a last line that is only such a word; the critique is the text before it."""
    matches = list(_VERDICT.finditer(text))
    if matches:
        last = matches[-1]
        return Judgment(_BARE[last.group(1).lower()], _before(text[: last.start()]), text)
    lines = text.strip().splitlines()
    word = re.sub(r"[^a-z]", "", lines[-1].lower()) if lines else ""
    if word in _BARE:
        return Judgment(_BARE[word], _before("\n".join(lines[:-1])), text)
    return Judgment(None, text.strip(), text)


def _before(text: str) -> str:
    """The critique: the text before the verdict, without a dangling markdown marker."""
    return text.rstrip().rstrip("*_#`>- ").strip()


def vote(judgments: list[Judgment]) -> Judgment:
    """SPaR's judgment by self-consistency: the majority verdict of the readable judgments (a tie
    rejects), represented by the first judgment that gives it; unreadable when none is readable."""
    readable = [j for j in judgments if j.accepted is not None]
    if not readable:
        return judgments[0]
    accepted = 2 * sum(j.accepted for j in readable) > len(readable)
    return next(j for j in readable if j.accepted == accepted)


@dataclass
class Node:
    id: int
    response: str
    judgment: Judgment
    depth: int
    parent: int | None


@dataclass
class SearchResult:
    nodes: list[Node]
    accepted: int | None = None  # the id of the accepted refinement
    expansions: int = 0
    refinements: int = 0
    judgments: int = 0
    unparseable: int = 0
    stopped_by: str = ""  # accepted | depth | budget

    def as_row(self) -> dict:
        return {
            "nodes": [{**asdict(n), "judgment": asdict(n.judgment)} for n in self.nodes],
            "accepted": self.accepted,
            "expansions": self.expansions,
            "refinements": self.refinements,
            "judgments": self.judgments,
            "unparseable": self.unparseable,
            "stopped_by": self.stopped_by,
        }


@dataclass
class SearchSettings:
    strategy: str = "bfs"  # bfs | dfs
    max_depth: int = 3
    branching: int = 3
    budget: int = 15  # refinements per prompt


Refine = Callable[[Node, int], list[str]]  # (node, how many) -> refinements of node.response
Judge = Callable[[list[str]], list[Judgment]]  # responses -> their judgments


def tree_search(
    root_response: str, root_judgment: Judgment, refine: Refine, judge: Judge, settings: SearchSettings
) -> SearchResult:
    """Refinements of a rejected response until the judge accepts one (see the module doc)."""
    root = Node(0, root_response, root_judgment, 0, None)
    result = SearchResult([root])
    frontier: deque[Node] = deque([root])
    while frontier:
        node = frontier.popleft() if settings.strategy == "bfs" else frontier.pop()
        if node.depth >= settings.max_depth:
            result.stopped_by = result.stopped_by or "depth"
            continue
        room = settings.budget - result.refinements
        if room <= 0:
            result.stopped_by = "budget"
            break
        children = _expand(node, min(settings.branching, room), refine, judge, result)
        accepted = next((c for c in children if c.judgment.accepted), None)
        if accepted is not None:
            result.accepted, result.stopped_by = accepted.id, "accepted"
            return result
        # DFS pops from the right: push the children last-first so the first child is explored first
        frontier.extend(children if settings.strategy == "bfs" else reversed(children))
    result.stopped_by = result.stopped_by or "depth"
    return result


def _expand(node: Node, count: int, refine: Refine, judge: Judge, result: SearchResult) -> list[Node]:
    texts = refine(node, count)
    judgments = judge(texts)
    result.expansions += 1
    result.refinements += len(texts)
    result.judgments += len(texts)
    children = []
    for text, judgment in zip(texts, judgments):
        result.unparseable += judgment.accepted is None
        child = Node(len(result.nodes), text, judgment, node.depth + 1, node.id)
        result.nodes.append(child)
        children.append(child)
    return children
