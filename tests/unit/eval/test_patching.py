"""Applying unified diffs: the same result as GNU patch (-p1, no fuzz) on generated edits,
offsets, new and deleted files; a hunk that matches nowhere is refused by both."""

import difflib
import random
import shutil
import subprocess

import pytest

from posttrain.eval.patching import PatchError, apply_answer, apply_unified_diff

pytestmark = pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch is not installed")


def _diff(path, old, new):
    return "".join(
        difflib.unified_diff(
            (old or "").splitlines(True), new.splitlines(True), "/dev/null" if old is None else f"a/{path}", f"b/{path}"
        )
    )


def _gnu_patch(tmp_path, files, diff):
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    proc = subprocess.run(
        ["patch", "-p1", "-F0", "--batch", "--no-backup-if-mismatch"],
        input=diff,
        text=True,
        check=False,
        cwd=tmp_path,
        capture_output=True,
    )
    if proc.returncode != 0:
        return None
    return {str(p.relative_to(tmp_path)): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}


def _edited(text, rng):
    lines = text.splitlines(True)
    for _ in range(3):
        i = rng.randrange(len(lines))
        choice = rng.random()
        if choice < 0.4:
            lines[i] = f"changed {rng.random():.6f}\n"
        elif choice < 0.7:
            lines.insert(i, f"inserted {rng.random():.6f}\n")
        else:
            del lines[i]
    return "".join(lines)


@pytest.mark.parametrize("seed", range(6))
def test_generated_edits_match_gnu_patch(tmp_path, seed):
    rng = random.Random(seed)
    old = "".join(f"line {i} {rng.randint(0, 9)}\n" for i in range(40))
    new = _edited(old, rng)
    # the file the diff meets has grown at the top: every hunk applies at an offset
    target = "".join(f"header {i}\n" for i in range(seed)) + old
    diff = _diff("pkg/mod.py", old, new)
    try:
        ours = apply_unified_diff({"pkg/mod.py": target}, diff)
    except PatchError:  # a hunk anchored at the file's start no longer is: GNU patch refuses it too
        ours = None
    assert ours == _gnu_patch(tmp_path, {"pkg/mod.py": target}, diff)
    if seed == 0:  # no offset: the diff's own result
        assert ours == {"pkg/mod.py": new}


def test_new_and_deleted_files_match_gnu_patch(tmp_path):
    files = {"a.py": "x = 1\n", "gone.py": "print('bye')\n"}
    diff = _diff("new.py", None, "y = 2\n") + "".join(
        difflib.unified_diff(["print('bye')\n"], [], "a/gone.py", "/dev/null")
    )
    ours = apply_unified_diff(files, diff)
    assert ours == {"a.py": "x = 1\n", "new.py": "y = 2\n"}
    assert ours == _gnu_patch(tmp_path, files, diff)


def test_a_hunk_that_matches_nowhere_is_refused_like_gnu_patch(tmp_path):
    files = {"m.py": "a\nb\nc\n"}
    diff = "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n a\n-x\n+y\n"
    assert _gnu_patch(tmp_path, files, diff) is None
    with pytest.raises(PatchError, match="hunk 1 of m.py does not match the file"):
        apply_unified_diff(files, diff)


def test_a_diff_of_a_file_not_in_the_repository_is_refused():
    with pytest.raises(PatchError, match="missing.py, which is not in the repository"):
        apply_answer({"m.py": "a\n"}, "--- a/missing.py\n+++ b/missing.py\n@@ -1 +1 @@\n-a\n+b\n")


def test_search_replace_edits_apply_and_a_missing_search_is_the_reason():
    files = {"m.py": "def f():\n    return 1\n", "other.py": "z = 0\n"}
    edits = "```python\n### m.py\n<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n>>>>>>> REPLACE\n```"
    patched, kind = apply_answer(files, edits)
    assert kind == "search_replace" and patched == {"m.py": "def f():\n    return 2\n", "other.py": "z = 0\n"}
    with pytest.raises(PatchError, match="edits do not apply: SEARCH text not found in m.py"):
        apply_answer(files, edits.replace("return 1", "return 3", 1))
