"""Verifiable instructions (IFEval, Zhou et al. 2023): one check per instruction id, written from
the paper's descriptions of each instruction. A check takes the response and the instruction's
kwargs (as in IFEval's input_data.jsonl) and says whether the response follows it.

Loose accuracy re-runs every check on variants of the response (without its first line, its last
line, or both, and each with markdown '*' removed) and passes if any variant passes, so a
preamble like "Sure, here it is:" is not held against the model.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable

Check = Callable[..., bool]


def _compare(count: int, relation: str, bound: int) -> bool:
    """IFEval's two relations: 'less than' (strict) and 'at least'."""
    if relation == "less than":
        return count < bound
    if relation == "at least":
        return count >= bound
    raise ValueError(f"unknown relation {relation!r}")


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _stars_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\s?\*\s?\*\s?\*\s?", text)]


def number_paragraphs(text: str, num_paragraphs: int) -> bool:
    """Paragraphs separated by the markdown divider ***; an empty one between dividers fails."""
    parts = _stars_paragraphs(text)
    if any(not p for p in parts[1:-1]):
        return False
    return len([p for p in parts if p]) == num_paragraphs


def nth_paragraph_first_word(text: str, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) != num_paragraphs or not 1 <= nth_paragraph <= len(paragraphs):
        return False
    found = words(paragraphs[nth_paragraph - 1])
    return bool(found) and found[0].lower() == first_word.lower()


def json_format(text: str) -> bool:
    body = text.strip()
    body = re.sub(r"^```(?:json|Json|JSON)?\s*", "", body)
    body = re.sub(r"\s*```$", "", body)
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def bullet_lists(text: str, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def highlighted_sections(text: str, num_highlights: int) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.strip("*").strip()]
    return len(single) + len(double) >= num_highlights


def multiple_sections(text: str, section_spliter: str, num_sections: int) -> bool:
    parts = re.split(r"\s?" + re.escape(section_spliter) + r"\s?\d+\s?", text)
    return len(parts) - 1 >= num_sections


def two_responses(text: str) -> bool:
    parts = [p.strip() for p in text.split("******")]
    nonempty = [p for p in parts if p]
    return len(parts) == 2 and len(nonempty) == 2 and nonempty[0] != nonempty[1]


def postscript(text: str, postscript_marker: str) -> bool:
    marker = postscript_marker.strip().lower()
    if marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return re.search(pattern, text.lower(), flags=re.MULTILINE) is not None


def _count_word(text: str, word: str) -> int:
    return len(re.findall(r"\b" + re.escape(word) + r"\b", text, flags=re.IGNORECASE))


CHECKS: dict[str, Check] = {
    "keywords:existence": lambda r, keywords: all(re.search(re.escape(k), r, re.IGNORECASE) for k in keywords),
    "keywords:frequency": lambda r, keyword, frequency, relation: _compare(
        _count_word(r, keyword), relation, frequency
    ),
    "keywords:forbidden_words": lambda r, forbidden_words: not any(_count_word(r, w) for w in forbidden_words),
    "keywords:letter_frequency": lambda r, letter, let_frequency, let_relation: _compare(
        r.lower().count(letter.lower()), let_relation, let_frequency
    ),
    "length_constraints:number_words": lambda r, num_words, relation: _compare(len(words(r)), relation, num_words),
    "length_constraints:number_sentences": lambda r, num_sentences, relation: _compare(
        len(sentences(r)), relation, num_sentences
    ),
    "length_constraints:number_paragraphs": number_paragraphs,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "detectable_content:number_placeholders": lambda r, num_placeholders: (
        len(re.findall(r"\[.*?\]", r)) >= num_placeholders
    ),
    "detectable_content:postscript": postscript,
    "detectable_format:number_bullet_lists": bullet_lists,
    "detectable_format:constrained_response": lambda r: any(
        option in r for option in ("My answer is yes.", "My answer is no.", "My answer is maybe.")
    ),
    "detectable_format:number_highlighted_sections": highlighted_sections,
    "detectable_format:multiple_sections": multiple_sections,
    "detectable_format:json_format": json_format,
    "detectable_format:title": lambda r: any(t.strip() for t in re.findall(r"<<([^\n]+)>>", r)),
    "combination:two_responses": two_responses,
    "combination:repeat_prompt": lambda r, prompt_to_repeat: (
        r.strip().lower().startswith(prompt_to_repeat.strip().lower())
    ),
    "startend:end_checker": lambda r, end_phrase: r.strip().lower().endswith(end_phrase.strip().lower()),
    "startend:quotation": lambda r: len(r.strip()) > 1 and r.strip()[0] == '"' and r.strip()[-1] == '"',
    "change_case:capital_word_frequency": lambda r, capital_frequency, capital_relation: _compare(
        len(re.findall(r"\b[A-Z][A-Z0-9]*\b", r)), capital_relation, capital_frequency
    ),
    "change_case:english_capital": lambda r: r == r.upper() and any(c.isalpha() for c in r),
    "change_case:english_lowercase": lambda r: r == r.lower() and any(c.isalpha() for c in r),
    "punctuation:no_comma": lambda r: "," not in r,
}


def _response_language(response: str, language: str) -> bool:
    from langdetect import detect  # optional: only this check needs it
    from langdetect.lang_detect_exception import LangDetectException

    try:
        return detect(response) == language
    except LangDetectException:
        return True  # as IFEval: text with no detectable language does not fail the check


def check(instruction_id: str, response: str, kwargs: dict) -> bool | None:
    """True/False, or None when the instruction cannot be checked here (unknown id, or
    language:response_language without langdetect installed)."""
    if instruction_id == "language:response_language":
        try:
            return _response_language(response, **kwargs)
        except ImportError:
            return None
    function = CHECKS.get(instruction_id)
    if function is None:
        return None
    wanted = list(inspect.signature(function).parameters)[1:]  # rows may carry other keys too
    return bool(response.strip()) and function(response, **{k: kwargs[k] for k in wanted})


def loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    variants = [response, *cut]
    return variants + [v.replace("*", "") for v in variants]


def check_loose(instruction_id: str, response: str, kwargs: dict) -> bool | None:
    results = [check(instruction_id, variant, kwargs) for variant in loose_variants(response) if variant.strip()]
    if any(r is None for r in results):
        return None
    return any(results)
