"""A synthetic second language for vocabulary-extension experiments ("Nordl"): the tiny model's
English sentence templates, translated word by word into invented words.

Words are 2-4 syllables drawn from a fixed inventory that uses letters English text rarely has
(å, ø, ë, q, x, z), so a tokenizer trained on the English corpus splits them into many pieces:
the situation of Llama-3's tokenizer on Russian or Dutch text that vocabulary extension fixes.
The lexicon is a pure function of its seed; sentences are a pure function of (n, seed).
"""

from __future__ import annotations

import random

from posttrain.data.synth.english import english_sentences

_ONSETS = ["k", "v", "z", "q", "r", "sk", "dr", "m", "t", "x", "l", "br", "h"]
_VOWELS = ["å", "ø", "ë", "a", "i", "o", "u", "e"]
_CODAS = ["", "", "n", "r", "k", "st", "lt"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(rng.randint(2, 4)))


def lexicon(seed: int = 0) -> dict[str, str]:
    """English word -> invented word, one-to-one, for every word the English templates use."""
    rng = random.Random(f"nordl-lexicon/{seed}")
    english = sorted(
        {
            w.strip(".,").lower()
            for s in english_sentences(2000, random.Random(0))
            for w in s.split()
            if not w.strip(".,").isdigit()
        }
    )
    words: dict[str, str] = {}
    used: set[str] = set()
    for w in english:
        new = _word(rng)
        while new in used:
            new = _word(rng)
        used.add(new)
        words[w] = new
    return words


def translate(sentence: str, words: dict[str, str]) -> str:
    out = []
    for token in sentence.split():
        core, tail = token.rstrip(".,"), token[len(token.rstrip(".,")) :]
        new = words.get(core.lower(), core)
        out.append((new.capitalize() if core[:1].isupper() else new) + tail)
    return " ".join(out)


def second_language_sentences(n: int, seed: int = 0) -> list[str]:
    words = lexicon()
    return [translate(s, words) for s in english_sentences(n, random.Random(f"nordl/{seed}"))]


def words_per_text(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)
