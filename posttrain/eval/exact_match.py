"""Exact match of a generated final answer against a reference (the quickstart's metric, and the
periodic generation metric of SFT runs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from posttrain.data.chat import tokenize_prompt
from posttrain.data.records import PromptRecord
from posttrain.data.synth.arithmetic import extract_final_number
from posttrain.model.generate import GenerationConfig, generate_text


@dataclass
class Sample:
    prompt: str
    output: str
    extracted: str | None
    reference: str
    correct: bool


def exact_match(model, tokenizer, records: Sequence[PromptRecord], cfg: GenerationConfig,
                extract: Callable[[str], str | None] = extract_final_number) -> tuple[float, list[Sample]]:
    """Greedy-generate an answer for each prompt and compare the extracted answer to the reference."""
    prompts = [tokenize_prompt(tokenizer, r.prompt) for r in records]
    outputs = generate_text(model, tokenizer, prompts, cfg)
    samples = []
    for record, output in zip(records, outputs):
        found = extract(output)
        samples.append(Sample(record.prompt[-1]["content"], output, found, str(record.reference),
                              found is not None and found == extract(str(record.reference))))
    accuracy = sum(s.correct for s in samples) / max(1, len(samples))
    return accuracy, samples
