"""A small retrieval corpus made by a seeded program (no model, no download): one document per
fictional town, each holding eight facts in shuffled order among filler sentences, and one QA pair
per fact. Every run with the same seed writes the same files.

    posttrain rag corpus --out data/towns     # docs.jsonl (id, title, text, oracle_questions), qa.jsonl

Each fact has two phrasings of its question: the one users ask (qa.jsonl: question, answer,
doc, evidence = the sentence that answers it) and a different one stored with the document as
`oracle_questions` (sentence -> question). The oracle question writer of `posttrain rag index`
uses the latter: a stand-in for an LLM question writer that is always right, so comparing it
with plain chunk retrieval measures retrieval alone, not question generation.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# (sentence, oracle (index) question, user (eval) question); {T}: the town, {v}: the answer
FACTS = {
    "founded": ("The town was founded in {v}.", "When was {T} founded?", "In which year was {T} established?"),
    "population": (
        "About {v} people live there today.",
        "How many people live in {T}?",
        "What is the population of {T}?",
    ),
    "river": (
        "The {v} river flows through its old quarter.",
        "Which river flows through {T}?",
        "What river runs through the town of {T}?",
    ),
    "mayor": ("Its current mayor is {v}.", "Who is the mayor of {T}?", "Who leads the town council of {T}?"),
    "export": (
        "Its main export is {v}.",
        "What is the main export of {T}?",
        "What product does {T} mostly sell to other regions?",
    ),
    "festival": (
        "Every year in {v} the town holds a lantern festival.",
        "In which month is the lantern festival of {T} held?",
        "When does {T} celebrate its lantern festival?",
    ),
    "altitude": (
        "It lies {v} metres above sea level.",
        "At what altitude does {T} lie?",
        "How high above sea level is {T}?",
    ),
    "twin": ("It is twinned with {v}.", "Which town is {T} twinned with?", "What is the sister city of {T}?"),
}
FILLER = [
    "Visitors often praise its quiet streets.",
    "The railway station was rebuilt after a storm.",
    "Local bakers are proud of their rye bread.",
    "A small museum displays old maps of the region.",
    "The market square fills with stalls on Saturdays.",
    "Many families have lived there for generations.",
    "The surrounding hills are popular with walkers.",
    "A stone bridge links the two halves of the town.",
]
_SYLLABLES = [
    "vel",
    "mor",
    "ka",
    "tor",
    "lin",
    "sa",
    "bre",
    "dun",
    "ith",
    "ra",
    "gol",
    "nev",
    "ost",
    "pe",
    "quil",
    "ren",
    "sho",
    "tam",
    "ur",
    "zan",
]
_RIVERS = ["Arlen", "Brisk", "Corran", "Dovey", "Elm", "Fenn", "Garra", "Hollow", "Isk", "Juno"]
_PEOPLE = [
    "Ada Marsh",
    "Bruno Keel",
    "Clara Voss",
    "Dmitri Hale",
    "Edda Lind",
    "Farid Noor",
    "Greta Holm",
    "Hugo Pell",
    "Ines Roth",
    "Jonas Weir",
    "Kira Dane",
    "Luca Fenn",
]
_EXPORTS = ["wool", "copper", "cheese", "glassware", "timber", "honey", "salt", "paper", "olive oil", "clocks"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _town_names(rng: random.Random, n: int) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = "".join(rng.sample(_SYLLABLES, rng.choice([2, 3]))).capitalize()
        if name not in names:
            names.append(name)
    return names


def _values(rng: random.Random, towns: list[str], town: str) -> dict[str, str]:
    return {
        "founded": str(rng.randint(1100, 1900)),
        "population": f"{rng.randint(2, 90) * 100 + rng.randint(1, 99)}",
        "river": rng.choice(_RIVERS),
        "mayor": rng.choice(_PEOPLE),
        "export": rng.choice(_EXPORTS),
        "festival": rng.choice(_MONTHS),
        "altitude": str(rng.randint(5, 1800)),
        "twin": rng.choice([t for t in towns if t != town]),
    }


def make_corpus(n_docs: int = 40, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(documents, QA pairs): one document per town, one QA pair per fact."""
    rng = random.Random(seed)
    towns = _town_names(rng, n_docs)
    docs, qa = [], []
    for doc_id, town in enumerate(towns):
        values = _values(rng, towns, town)
        facts = [(FACTS[k][0].format(v=v), k, v) for k, v in values.items()]
        sentences = [s for s, _, _ in facts] + rng.sample(FILLER, 3)
        rng.shuffle(sentences)
        text = f"{town} is a town in the northern valleys. " + " ".join(sentences)
        oracle = [{"sentence": s, "question": FACTS[k][1].format(T=town)} for s, k, _ in facts]
        docs.append({"id": doc_id, "title": town, "text": text, "oracle_questions": oracle})
        qa += [{"question": FACTS[k][2].format(T=town), "answer": v, "doc": doc_id, "evidence": s} for s, k, v in facts]
    return docs, qa


def write_corpus(out: str | Path, n_docs: int = 40, seed: int = 0) -> dict[str, Path]:
    from posttrain.data.jobs import write_atomically

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs, qa = make_corpus(n_docs, seed)
    paths = {"docs": out / "docs.jsonl", "qa": out / "qa.jsonl"}
    for name, rows in (("docs", docs), ("qa", qa)):
        write_atomically(paths[name], "".join(json.dumps(r) + "\n" for r in rows))
    return paths
