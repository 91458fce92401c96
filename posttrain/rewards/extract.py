"""Answer extraction: the part of a free-form completion that is compared with the reference.

Each extractor returns None when the completion holds no answer of its kind (scored wrong).
References go through `canonical` of the same kind, so "1,000" matches "1000" and "(B)" matches "B".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from posttrain.errors import UserError

# A model's answer can be any string: numbers beyond this many digits (or powers of ten) are not
# answers but attacks on the parser (int() of 1e99999999 never returns, str() of a 6,000-digit
# int raises), so they are treated as "no number".
MAX_NUMBER_DIGITS = 1000
_NUMBER = r"-?(?:\d[\d,]*)?\.?\d+"
_ANSWER_IS = re.compile(r"(?:answer is|answer:|####)\s*\$?\s*(" + _NUMBER + ")", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(?<![\d.])" + _NUMBER)
_LETTER_PATTERNS = [
    re.compile(r"answer is:?\s*\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"answer:\s*\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-J])(?:[.):]|\s*$)"),  # "C." "(C)" "C" -- not the word "I"
    re.compile(r"\(([A-J])\)"),
]


def canonical_number(text: str) -> str | None:
    """'1,000' -> '1000', '72.00' -> '72', '-3.5' -> '-3.5'; None if not a number."""
    try:
        value = Decimal(text.replace(",", "").replace("$", "").strip())
    except InvalidOperation:
        return None
    if (
        not value.is_finite()
        or len(value.as_tuple().digits) > MAX_NUMBER_DIGITS
        or abs(value.adjusted()) > MAX_NUMBER_DIGITS
    ):
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def final_number(text: str) -> str | None:
    """The number after the last 'The answer is' / 'Answer:' / '####', else the last number."""
    marked = _ANSWER_IS.findall(text)
    found = marked or _ANY_NUMBER.findall(text)
    return canonical_number(found[-1]) if found else None


def boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (braces balanced), as MATH solutions mark the answer."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return canonical_text(text[begin : i - 1]) if depth == 0 else None


def choice_letter(text: str) -> str | None:
    """A multiple-choice letter A-J: 'The answer is (C)', 'Answer: C', a leading 'C.' or '(C)'."""
    for pattern in _LETTER_PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1].upper() if pattern is not _LETTER_PATTERNS[2] else found[0].upper()
    return None


def regex_extractor(pattern: str) -> Callable[[str], str | None]:
    """The last match of a user's pattern (its first group if it has one)."""
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise UserError(f"regex {pattern!r} does not compile: {err}") from None

    def extract(text: str) -> str | None:
        matches = list(compiled.finditer(text))
        if not matches:
            return None
        last = matches[-1]
        return canonical_text(last.group(1) if compiled.groups else last.group(0))

    return extract


def whole_text(text: str) -> str | None:
    return canonical_text(text) or None


def canonical_text(text: str) -> str:
    """Case, surrounding whitespace/quotes/$ and a trailing period do not count."""
    text = " ".join(text.split()).strip().strip("$\"'").strip()
    return text.rstrip(".").strip().casefold()


def get_extractor(kind: str, pattern: str | None = None) -> Callable[[str], str | None]:
    if kind == "regex":
        if not pattern:
            raise UserError("extract: regex needs a `regex` pattern")
        return regex_extractor(pattern)
    from posttrain.rewards.countdown import extract_expression

    table = {
        "final_number": final_number,
        "boxed": boxed,
        "choice_letter": choice_letter,
        "text": whole_text,
        "countdown": extract_expression,
    }
    if kind not in table:
        raise UserError(f"unknown extract '{kind}'; choose one of {sorted([*table, 'regex'])}")
    return table[kind]


def canonical(kind: str, reference: str) -> str:
    """The reference in the form the extractor of `kind` produces."""
    if kind == "final_number":
        return canonical_number(reference) or canonical_text(reference)
    if kind == "choice_letter":
        bare = reference.strip().strip("().").upper()
        return bare if len(bare) == 1 else choice_letter(reference) or canonical_text(reference)
    if kind == "boxed":
        return boxed(reference) or canonical_text(reference)
    if kind == "countdown":
        return reference
    return canonical_text(reference)
