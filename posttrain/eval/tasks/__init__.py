"""Task kinds, each a module with `run(task, docs, pool, ctx) -> samples` and `metrics(task)`.
This table is the only place a kind's name maps to its code."""

from posttrain.eval.tasks import (
    agent,
    classification,
    code,
    generation,
    hpt,
    ifeval,
    judge_grade,
    llama_guard,
    multiple_choice,
    pairwise,
    perplexity,
    refusal,
    swe_patch,
)

KIND_MODULES = {
    "multiple_choice": multiple_choice,
    "generation": generation,
    "classification": classification,
    "perplexity": perplexity,
    "ifeval": ifeval,
    "pairwise_judge": pairwise,
    "hpt": hpt,
    "refusal": refusal,
    "judge_grade": judge_grade,
    "llama_guard": llama_guard,
    "code": code,
    "swe_patch": swe_patch,
    "agent": agent,
}
