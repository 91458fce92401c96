"""SWE-RL's similarity reward by hand: edits applied to the given files, unified diffs compared."""

import pytest

from posttrain.errors import UserError
from posttrain.rewards.swe_rl import apply_edits, similarity, unified_diff

SAMPLE = {
    "code_context": {"a.py": "def f():\n    return 1\n", "b.py": "x = 0\n"},
    "oracle_new_content": {"a.py": "def f():\n    return 2\n"},
}


def edit(path, search, replace):
    return f"```python\n### {path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```"


def answer(*edits, thought="look at f"):
    return f"<think>{thought}</think>\n<solution>\n" + "\n".join(edits) + "\n</solution>"


def test_the_oracle_edit_scores_one_and_a_near_miss_by_its_diff():
    assert similarity(SAMPLE, answer(edit("a.py", "    return 1", "    return 2"))) == 1.0
    # the two diffs "@@ -1,2 +1,2 @@\n def f():\n-    return 1\n+    return k" are 53 characters
    # each and differ in the last one: ratio 2 * 52 / 106
    assert unified_diff("def f():\n    return 1\n", "def f():\n    return 2\n").endswith("+    return 2")
    assert len(unified_diff("def f():\n    return 1\n", "def f():\n    return 2\n")) == 53
    assert similarity(SAMPLE, answer(edit("a.py", "    return 1", "    return 3"))) == pytest.approx(52 / 53)


def test_files_only_one_side_changes_score_zero_in_the_mean():
    right, extra = edit("a.py", "    return 1", "    return 2"), edit("b.py", "x = 0", "x = 1")
    assert similarity(SAMPLE, answer(right, extra)) == 0.5  # (1 + 0) / 2
    assert similarity(SAMPLE, answer(extra)) == 0.0


def test_edits_apply_in_order_at_line_starts():
    files = {"m.py": "a = 1\nb = a\n"}
    assert apply_edits(files, {"m.py": [("a = 1", "a = 2"), ("b = a", "b = a + 1")]}) == {"m.py": "a = 2\nb = a + 1\n"}


@pytest.mark.parametrize(
    "completion",
    [
        edit("a.py", "    return 1", "    return 2"),  # no <think>/<solution>
        answer(edit("a.py", "    return 1", "    return 2"), thought=" "),  # empty thought
        answer(edit("a.py", "    return 1", "    return 2")) + "<think>again</think>",  # a tag twice
        answer("    return 2"),  # no edit block
        answer(edit("a.py", "return 1", "return 2")),  # matches only mid-line
        answer(edit("a.py", "    return 7", "    return 2")),  # search text not in the file
        answer(edit("a.py", "    return 1", "    return 1")),  # search equals replace
    ],
)
def test_malformed_answers_score_minus_one(completion):
    assert similarity(SAMPLE, completion) == -1.0


def test_without_tags_the_whole_completion_is_the_answer():
    assert similarity(SAMPLE, edit("a.py", "    return 1", "    return 2"), tags=False) == 1.0


def test_patch_mode_needs_the_files():
    with pytest.raises(UserError, match="code_context"):
        similarity({"reference": "x"}, answer(edit("a.py", "a", "b")))


def test_block_mode_compares_the_captured_text_with_the_reference():
    sample = {"reference": "a = 1\n"}
    assert similarity(sample, "patch:\n```python\na = 1\n```", mode="block") == 1.0
    assert 0 < similarity(sample, "```\na = 2\n```", mode="block") < 1
    assert similarity(sample, "a = 1", mode="block") == -1.0
