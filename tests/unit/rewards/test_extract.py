import pytest

from posttrain.errors import UserError
from posttrain.rewards.extract import (
    boxed,
    canonical,
    choice_letter,
    final_number,
    get_extractor,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("7 + 8 = 15. The answer is 85.", "85"),
        ("so she pays $1,250.00 in total. #### 1,250", "1250"),
        ("The answer is -3.50 dollars, not 4", "-3.5"),
        ("first 12, then 30, finally 42", "42"),
        ("no digits here", None),
        ("Answer: 18\nIt was 20 before.", "18"),  # an explicit answer beats a later number
    ],
)
def test_final_number(text, expected):
    assert final_number(text) == expected


def test_boxed_takes_the_last_balanced_box():
    assert boxed(r"try \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert boxed(r"\boxed{ 42 }") == "42"
    assert boxed("no box") is None and boxed(r"\boxed{unclosed") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is (C).", "C"),
        ("Answer: B", "B"),
        ("D. Paris is the capital", "D"),
        ("I think (A) is right", "A"),
        ("nothing to see", None),
        ("the answer is b", "B"),
    ],
)
def test_choice_letter(text, expected):
    assert choice_letter(text) == expected


def test_regex_uses_the_last_match_and_its_group():
    extract = get_extractor("regex", r"Final: (\w+)")
    assert extract("Final: x ... Final: Yes.") == "yes"
    assert extract("none") is None
    with pytest.raises(UserError, match="does not compile"):
        get_extractor("regex", "(")
    with pytest.raises(UserError, match="needs a `regex`"):
        get_extractor("regex")


def test_references_are_put_in_the_extractors_form():
    assert canonical("final_number", "1,000") == "1000"
    assert canonical("choice_letter", "(b)") == "B"
    assert canonical("text", " Paris. ") == "paris"
