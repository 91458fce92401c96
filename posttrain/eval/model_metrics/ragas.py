"""RAGAS-style answer quality (Es et al. 2023, "RAGAS") through the judge backend (generation/judge.py:
a local model or an OpenAI-compatible endpoint answering with one of the given labels).

faithfulness      the answer is split into statements (sentences); the judge says for each whether
                  the context supports it (Yes/No); score = supported / statements, as RAGAS.
answer_relevance  the judge says whether the answer addresses the question (Yes/No); score = the
                  judge's P(Yes). RAGAS instead generates questions from the answer and takes their
                  embedding similarity to the question: this is the judge-verdict variant.
A judge that gives no answer for an item leaves its score out (counted as judge_failures).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

LABELS = ["Yes", "No"]
SUPPORT_TEMPLATE = """Context:
{context}

Statement: {statement}

Can the statement be inferred from the context? Answer Yes or No."""
RELEVANCE_TEMPLATE = """Question: {question}

Answer: {answer}

Does the answer address the question? Answer Yes or No."""


def statements(answer: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if s.strip()]


def faithfulness(judge, contexts: Sequence[str], answers: Sequence[str]) -> list[float | None]:
    split = [statements(a) for a in answers]
    prompts = [SUPPORT_TEMPLATE.format(context=c, statement=s) for c, parts in zip(contexts, split) for s in parts]
    verdicts = judge.choose(prompts, LABELS) if prompts else []
    out, start = [], 0
    for parts in split:
        mine, start = verdicts[start : start + len(parts)], start + len(parts)
        if not parts:
            out.append(0.0)  # an empty answer states nothing the context supports
        elif any(v is None for v in mine):
            out.append(None)
        else:
            out.append(sum(v[0] > v[1] for v in mine) / len(parts))
    return out


def answer_relevance(judge, questions: Sequence[str], answers: Sequence[str]) -> list[float | None]:
    prompts = [RELEVANCE_TEMPLATE.format(question=q, answer=a) for q, a in zip(questions, answers)]
    return [None if v is None else float(v[0]) for v in judge.choose(prompts, LABELS)]
