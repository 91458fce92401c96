"""Math final-answer match (Tulu 3 RLVR's GSM8K/MATH verifier): 1.0 when the completion's answer
equals the sample's reference, else 0.0. Tulu 3 scales a verified answer to alpha = 10: give the
term weight 10 in the recipe rather than changing the verifier.

The answer is the last \\boxed{...} when there is one (MATH), else the number after "The answer
is" / "####" or the last number (GSM8K). Both sides are compared as exact fractions when they
parse as numbers ("1,000" = "1000", "0.5" = "1/2" = "\\frac{1}{2}"), else as normalised text
without whitespace (no symbolic equivalence: 'x+1' = 'x + 1' but not '1+x').
"""

from __future__ import annotations

import re
from fractions import Fraction

from posttrain.rewards.extract import MAX_NUMBER_DIGITS, boxed, canonical_text, final_number

_FRAC = re.compile(r"^\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_EXPONENT = re.compile(r"[eE]([+-]?\d+)$")


def as_fraction(text: str | None) -> Fraction | None:
    """'1,000' -> 1000, '-0.25' -> -1/4, '3/4' and '\\frac{3}{4}' -> 3/4; None if not a number."""
    if text is None:
        return None
    text = text.replace(",", "").replace("$", "").replace(" ", "").strip().rstrip(".")
    latex = _FRAC.match(text)
    if latex:
        text = f"{latex.group(1)}/{latex.group(2)}"
    if not _bounded(text):
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def _bounded(text: str) -> bool:
    """Whether Fraction(text) finishes quickly: at most MAX_NUMBER_DIGITS characters and a power of
    ten within that many digits (Fraction('1e99999999') builds a 100-million-digit integer)."""
    if len(text) > 2 * MAX_NUMBER_DIGITS + 1:  # numerator / denominator
        return False
    exponent = _EXPONENT.search(text)
    return exponent is None or abs(int(exponent.group(1))) <= MAX_NUMBER_DIGITS


def extract_answer(completion: str) -> str | None:
    """The last \\boxed{} content, else the final number."""
    return boxed(completion) or final_number(completion)


def answers_match(answer: str | None, reference: str) -> bool:
    if answer is None:
        return False
    got, want = as_fraction(answer), as_fraction(boxed(reference) or reference)
    if got is not None and want is not None:
        return got == want
    return _squeezed(answer) == _squeezed(boxed(reference) or reference)


def _squeezed(text: str) -> str:
    """Normalised text without any whitespace: 'x + 1' and 'x+1' are the same answer."""
    return "".join(canonical_text(text).split())


def math_answer(sample: dict, completion: str) -> float:
    """1.0 if the completion's final answer equals sample['reference'], else 0.0."""
    return float(answers_match(extract_answer(completion), str(sample["reference"])))
