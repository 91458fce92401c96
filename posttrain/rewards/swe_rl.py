"""SWE-RL's similarity reward (Wei et al. 2025, "SWE-RL: Advancing LLM Reasoning via Reinforcement
Learning on Open Software Evolution", section 2.1).

The model answers with search/replace edits, each in a fenced block naming its file:

    ```python
    ### path/to/file.py
    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE
    ```

mode "patch" (the paper): the edits are applied to the files' given contents
(sample['code_context'], path -> text); each changed file's unified diff is compared with the
oracle's (from sample['oracle_new_content'], path -> text after the reference change) by
difflib.SequenceMatcher(...).ratio(), and r is the mean over the files either side changes (a file
only one side changes scores 0). r = -1 when the answer is malformed: with `tags` (default, the
paper's layout) the completion must hold <think>...</think> and <solution>...</solution> once
each with a non-empty thought; no edit block; a SEARCH text not found in its file; a SEARCH equal
to its REPLACE.
mode "block": the text `pattern` captures last (default: the last fenced block) compared with
sample['reference'] by the same ratio, -1 when nothing matches (a cheaper proxy for answers that
are not edits).
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from posttrain.errors import UserError

FENCED = r"```[^\n]*\n(.*?)```"
_EDIT = re.compile(r"```[^\n]*\n### (.*)\n<<<<<<< SEARCH\n([\s\S]*?)\n=======\n([\s\S]*?)\n>>>>>>> REPLACE\n```")


class BadAnswer(ValueError):
    """An answer outside the format: reward -1."""


def similarity(
    sample: dict, completion: str, mode: Literal["patch", "block"] = "patch", pattern: str = FENCED, tags: bool = True
) -> float:
    if mode == "block":
        return _block_similarity(sample, completion, pattern)
    if mode != "patch":
        raise UserError(f"reward 'similarity': mode must be patch or block, got {mode!r}")
    files, oracle = _files(sample, "code_context"), _files(sample, "oracle_new_content")
    try:
        answer = solution_text(completion) if tags else completion
        predicted = apply_edits(files, parse_edits(answer))
    except BadAnswer:
        return -1.0
    return patch_similarity(files, predicted, oracle)


def _block_similarity(sample: dict, completion: str, pattern: str) -> float:
    try:
        found = re.compile(pattern, re.DOTALL).findall(completion)
    except re.error as err:
        raise UserError(f"reward 'similarity': pattern {pattern!r} does not compile: {err}") from None
    if not found:
        return -1.0
    predicted = found[-1] if isinstance(found[-1], str) else found[-1][0]
    return difflib.SequenceMatcher(None, predicted, str(sample["reference"])).ratio()


def _files(sample: dict, field: str) -> dict[str, str]:
    value = sample.get(field)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UserError(
            f"reward 'similarity' (mode patch): each row needs '{field}', a mapping of file "
            f"path to file text (code_context: before the change, oracle_new_content: after "
            f"the reference change); or use options: {{mode: block}}"
        )
    return value


def solution_text(completion: str) -> str:
    for tag in ("<think>", "</think>", "<solution>", "</solution>"):
        if completion.count(tag) != 1:
            raise BadAnswer(f"{tag} appears {completion.count(tag)} times")
    if not completion.split("<think>")[1].split("</think>")[0].strip():
        raise BadAnswer("empty thought")
    return completion.split("<solution>")[1].split("</solution>")[0].strip()


def parse_edits(answer: str) -> dict[str, list[tuple[str, str]]]:
    edits: dict[str, list[tuple[str, str]]] = {}
    for path, search, replace in _EDIT.findall(answer):
        edits.setdefault(path.strip(), []).append((search, replace))
    if not edits:
        raise BadAnswer("no search/replace block")
    return edits


def apply_edits(files: dict[str, str], edits: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    """Each file's text after its edits, in order. Searches are anchored at a line start (a
    newline is put before the text and the search), so an edit cannot match mid-line."""
    out = {}
    for path, pairs in edits.items():
        text = "\n" + files.get(path, "")
        for search, replace in pairs:
            if search == replace:
                raise BadAnswer("a SEARCH equals its REPLACE")
            if "\n" + search not in text:
                raise BadAnswer(f"SEARCH text not found in {path}")
            text = text.replace("\n" + search, "\n" + replace)
        out[path] = text[1:]
    return out


def unified_diff(old: str, new: str) -> str:
    """The diff's hunks without the ---/+++ header (the header names no file here)."""
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3))
    return "\n".join(lines[2:])


def patch_similarity(files: dict[str, str], predicted: dict[str, str], oracle: dict[str, str]) -> float:
    """Mean over the files either side changes of the ratio of their unified diffs."""

    def patches(new: dict[str, str]) -> dict[str, str]:
        diffs = {path: unified_diff(files.get(path, ""), text) for path, text in new.items()}
        return {path: diff for path, diff in diffs.items() if diff}

    ours, theirs = patches(predicted), patches(oracle)
    paths = set(ours) | set(theirs)
    if not paths:
        return 0.0
    ratios = [
        difflib.SequenceMatcher(None, ours[p], theirs[p], autojunk=False).ratio() if p in ours and p in theirs else 0.0
        for p in paths
    ]
    return sum(ratios) / len(ratios)
