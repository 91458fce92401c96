"""Each verifiable instruction on a response that follows it and one that does not; loose
checking forgives a preamble line and markdown stars."""

import pytest

from posttrain.eval.tasks.ifeval import score_response
from posttrain.rewards.ifeval_checks import check, check_loose

CASES = [
    ("punctuation:no_comma", {}, "No commas here.", "Yes, one."),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "less than"},
        "Four words right here.",
        "This one has six words in it.",
    ),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "one two three", "one two"),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}, "One. Two!", "One."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n***\nSecond.", "Only one."),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "Start.\n\nThen end.",
        "Start.\n\nNow end.",
    ),
    ("keywords:existence", {"keywords": ["cat", "mat"]}, "The Cat sat on the mat.", "The cat sat."),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "All good; badge is fine.", "That is Bad."),
    ("keywords:frequency", {"keyword": "go", "frequency": 2, "relation": "at least"}, "go go", "go on"),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "less than"}, "zoo", "jazz"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "{a: 1}"),
    ("detectable_format:title", {}, "<<My Title>>\nText", "My Title\nText"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", "* one\n* two\n* three"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and *b*", "*a* only"),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nx\nSection 2\ny",
        "Section 1\nx",
    ),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name] at [address]", "Dear [name]"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", "Hi. bye"),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "Just one."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "Say hi. Hi!", "Hi!"),
    ("startend:end_checker", {"end_phrase": "Any questions?"}, "Done. Any questions?", "Any questions? Done."),
    ("startend:quotation", {}, '"All quoted."', 'Not "quoted".'),
    ("change_case:english_lowercase", {}, "all lower case", "Not all lower"),
    ("change_case:english_capital", {}, "ALL CAPS HERE", "NOT all caps"),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "THIS IS loud",
        "THIS is not",
    ),
]


@pytest.mark.parametrize("instruction, kwargs, good, bad", CASES, ids=[c[0] for c in CASES])
def test_check(instruction, kwargs, good, bad):
    assert check(instruction, good, kwargs) is True
    assert check(instruction, bad, kwargs) is False


def test_loose_forgives_a_preamble_and_markdown():
    response = "Sure, here it is:\nMy answer is yes."
    assert check("startend:end_checker", "**The end**", {"end_phrase": "the end"}) is False
    assert check_loose("startend:end_checker", "**The end**", {"end_phrase": "the end"}) is True
    assert check("detectable_format:json_format", 'Here:\n{"a": 1}', {}) is False
    assert check_loose("detectable_format:json_format", 'Here:\n{"a": 1}', {}) is True
    assert check_loose("detectable_format:constrained_response", response, {}) is True


def test_unknown_instructions_are_left_out_not_failed():
    doc = {"instruction_id_list": ["punctuation:no_comma", "made:up"], "kwargs": [{}, {}]}
    result = score_response(doc, "fine")
    assert result == {"followed_strict": [True], "followed_loose": [True], "unsupported": ["made:up"]}
