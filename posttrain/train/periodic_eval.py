"""The generation metric a recipe's `eval:` section asks for, as a callable the loop runs at eval
steps on the main process."""

from __future__ import annotations

from collections.abc import Callable

from posttrain.config import EvalConfig
from posttrain.data.sources import load_records
from posttrain.data.synth.arithmetic import extract_final_number
from posttrain.eval.exact_match import exact_match
from posttrain.model.generate import GenerationConfig


def generation_eval(cfg: EvalConfig, tokenizer) -> Callable | None:
    if cfg.task is None:
        return None
    records = load_records(cfg.data, kind="prompt").records[: cfg.limit]
    gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)

    extract = extract_final_number if cfg.answer == "final_number" else str.strip

    def run(model) -> dict[str, float]:
        accuracy, _ = exact_match(model, tokenizer, records, gen, extract)
        return {"exact_match": accuracy}

    return run
