"""Apply a model's answer to a repository snapshot (path -> text): a unified diff (`git diff` /
`diff -u` layout, paths with or without a/ b/ prefixes, new and deleted files) or SWE-RL
search/replace edits (rewards/swe_rl.py's format). Pure text work on the dicts: nothing of the
answer is executed here; the patched files then go to the sandbox with the hidden tests.

A hunk applies where its old lines (context and removals) stand at the line it names, else at
the nearest place they stand in full; a hunk with less context on one side is anchored to that
end of the file (GNU patch with no fuzz, which tests/unit/eval/test_patching.py compares with); a hunk whose old lines are
nowhere in the file, a file that is not in the snapshot, or an answer with no diff and no edit
is a PatchError whose message is the recorded reason.
"""

from __future__ import annotations

import re

from posttrain.rewards.swe_rl import BadAnswer, apply_edits, parse_edits

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_FENCED_DIFF = re.compile(r"```(?:diff|patch)?[ \t]*\n(.*?)```", re.DOTALL)


class PatchError(ValueError):
    """The answer does not apply; str(err) says why."""


def apply_answer(files: dict[str, str], answer: str) -> tuple[dict[str, str], str]:
    """(patched files, "diff" or "search_replace")."""
    if "<<<<<<< SEARCH" in answer:
        try:
            edited = apply_edits(files, parse_edits(answer))
        except BadAnswer as err:
            raise PatchError(f"edits do not apply: {err}") from None
        return {**files, **edited}, "search_replace"
    diff = _diff_text(answer)
    if diff is None:
        raise PatchError("no unified diff and no search/replace edit in the answer")
    return apply_unified_diff(files, diff), "diff"


def _diff_text(answer: str) -> str | None:
    for block in _FENCED_DIFF.findall(answer):
        if "\n@@ " in "\n" + block or block.startswith("--- "):
            return block
    return answer if re.search(r"^--- ", answer, re.MULTILINE) and "\n@@ " in answer else None


def _path(header: str) -> str | None:
    name = header[4:].split("\t")[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


def apply_unified_diff(files: dict[str, str], diff: str) -> dict[str, str]:
    out = dict(files)
    lines = diff.splitlines()
    i, headers = 0, 0
    while i < len(lines):
        if not (lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")):
            i += 1
            continue
        old, new = _path(lines[i]), _path(lines[i + 1])
        i, headers = i + 2, headers + 1
        hunks = []
        while i < len(lines) and lines[i].startswith("@@"):
            i = _read_hunk(lines, i, hunks)
        if not hunks:
            raise PatchError(f"the diff of {new or old} has no hunk")
        if old is not None and old not in out:
            raise PatchError(f"the diff changes {old}, which is not in the repository")
        text = _apply_hunks(out.get(old, "") if old else "", hunks, new or old)
        if old is not None and old != new:
            del out[old]
        if new is not None:
            out[new] = text
    if not headers:
        raise PatchError("no file header (--- a/PATH, +++ b/PATH) in the diff")
    return out


def _read_hunk(lines: list[str], i: int, hunks: list) -> int:
    match = _HUNK.match(lines[i])
    if not match:
        raise PatchError(f"malformed hunk header: {lines[i][:80]}")
    start = int(match.group(1))
    old_count = int(match.group(2) or 1)
    new_count = int(match.group(4) or 1)
    old_lines, new_lines = [], []
    i += 1
    first = i
    while i < len(lines) and (len(old_lines) < old_count or len(new_lines) < new_count):
        line = lines[i]
        tag, body = (line[:1], line[1:]) if line else (" ", "")
        if tag == "\\":  # "\ No newline at end of file"
            i += 1
            continue
        if tag not in " -+":
            break
        if tag in " -":
            old_lines.append(body)
        if tag in " +":
            new_lines.append(body)
        i += 1
    tags = [line[:1] or " " for line in lines[first:i] if line[:1] != "\\"]
    changed = [n for n, tag in enumerate(tags) if tag in "-+"]
    lead, trail = (changed[0], len(tags) - 1 - changed[-1]) if changed else (0, 0)
    hunks.append((start, old_lines, new_lines, lead, trail))
    return i


def _apply_hunks(text: str, hunks: list, path: str) -> str:
    lines = text.splitlines()
    offset = 0
    for number, (start, old, new, lead, trail) in enumerate(hunks, 1):
        at = _locate(lines, old, max(0, start - 1 + offset), _anchor(lead, trail))
        if at is None:
            raise PatchError(f"diff does not apply: hunk {number} of {path} does not match the file")
        lines[at : at + len(old)] = new
        offset += len(new) - len(old)
    return "\n".join(lines) + ("\n" if lines else "")


def _anchor(lead: int, trail: int) -> str | None:
    """A hunk with less context before its change than after it stands at the file's start, and
    one with less after than before at its end (diff drew fewer lines there: GNU patch's rule)."""
    return "start" if lead < trail else "end" if trail < lead else None


def _locate(lines: list[str], old: list[str], hint: int, anchor: str | None) -> int | None:
    """The start nearest `hint` where `old` stands in full (at the anchored end, if any)."""
    if not old:
        return min(hint, len(lines))
    candidates = [i for i in range(len(lines) - len(old) + 1) if lines[i : i + len(old)] == old]
    if anchor == "start":
        candidates = [i for i in candidates if i == 0]
    elif anchor == "end":
        candidates = [i for i in candidates if i + len(old) == len(lines)]
    return min(candidates, key=lambda i: abs(i - hint)) if candidates else None
