"""Weak-to-strong data selection (Yang et al. 2024, "Weak-to-Strong Reasoning"): final-answer
consistency between a weak model's answer and a strong model's own sampled answers decides which
weak-annotated examples the strong model is fine-tuned on; the strong model's disagreeing samples
give contrastive preference pairs.

    posttrain synth weak-to-strong --set questions=q.jsonl --set weak.model=W --set weak.backend=hf \
        --set strong.model=S --set strong.backend=hf --set n_strong=4 --out OUT

Per question: the weak model answers once (greedy unless weak_greedy: false); the strong model
samples n_strong answers, with the rows of `strong_few_shot` (conversations) before the question as
in-context examples (the paper's strong model answers in context, before any fine-tuning). Final
answers are extracted (`extract`: math = the last \\boxed{} or final number, compared as numbers,
rewards/math.py; or an eval extractor: final_number, boxed, choice_letter, text, regex).
- agreement: majority = the weak answer is among the strong samples' most common answers; any =
  it equals at least one strong answer. Agreeing questions become SFT rows (the weak model's
  response, or with sft_response: strong the first strong sample that agrees).
- pairs: on an agreeing question whose strong samples disagree with one another, chosen = a strong
  sample with the agreed answer, rejected = one with another answer or none (up to
  pairs_per_question pairs): the strong model's own contrastive samples, labelled by consistency.
Removed (counted): weak_no_answer, strong_no_answer (no strong sample has a final answer), disagree.
With reference answers in the question file, the manifest also counts how many kept questions'
agreed answers are correct (a check on the selection, not used by it).
Outputs: OUT/samples.jsonl (the job's record), OUT/sft.jsonl, OUT/pairs.jsonl (`posttrain dpo`),
OUT/manifest.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from posttrain.config.base import NonNegative, Positive, Section
from posttrain.data.jobs import BatchOutput
from posttrain.errors import UserError
from posttrain.generation.chat_model import ChatModel
from posttrain.generation.sample import input_identity, load_prompt_items
from posttrain.generation.source import ModelSpec, model_identity, require_model
from posttrain.synthesis.pipeline import (
    finish,
    job_failed,
    read_jsonl,
    removal_counts,
    run_model_job,
    write_jsonl,
)

NAME = "weak-to-strong"
HELP = "keep questions where weak and strong final answers agree (SFT); contrastive pairs (DPO)"


class Recipe(Section):
    out: str  # output directory
    questions: str | None = None  # prompt rows (prompt / messages, optional reference)
    weak: ModelSpec = ModelSpec()
    strong: ModelSpec = ModelSpec()
    n_strong: Positive = 4
    weak_greedy: bool = True
    strong_few_shot: str | None = None  # conversation rows shown to the strong model before each question
    extract: Literal["math", "final_number", "boxed", "choice_letter", "text", "regex"] = "math"
    regex: str | None = None  # extract: regex
    agreement: Literal["majority", "any"] = "majority"
    sft_response: Literal["weak", "strong"] = "weak"
    pairs_per_question: Positive = 1
    seed: NonNegative = 0
    batch_size: Positive = 16


def run(recipe: Recipe) -> int:
    if not recipe.questions:
        raise UserError("recipe: questions: missing (a prompt file: rows with 'prompt' or 'messages')")
    out = Path(recipe.out)
    extract, same = answer_rule(recipe.extract, recipe.regex)
    items, _ = load_prompt_items(recipe.questions, "fail")
    if not items:
        raise UserError(f"{recipe.questions}: no questions in the file")
    shots = few_shot_messages(recipe.strong_few_shot)
    require_model(recipe.strong, "strong")  # both named before either is reached
    weak, strong = ChatModel(recipe.weak, "weak"), ChatModel(recipe.strong, "strong")
    identity = {
        "method": NAME,
        "questions": input_identity(recipe.questions, len(items)),
        "weak": model_identity(recipe.weak),
        "strong": model_identity(recipe.strong),
        "strong_few_shot": input_identity(recipe.strong_few_shot, len(shots)) if shots else None,
        **recipe.model_dump(include={"n_strong", "weak_greedy", "extract", "regex", "seed"}),
    }

    def process(batch: list[dict], b: int) -> BatchOutput:
        return sample_batch(batch, weak, strong, shots, recipe, extract, recipe.seed + b)

    samples_path = out / "samples.jsonl"
    failed = job_failed(
        run_model_job(items, process, samples_path, recipe.batch_size, identity, "weak-to-strong"), samples_path
    )
    rows = [decide(row, same, recipe.agreement) for row in read_jsonl(samples_path)]
    sft, pairs = [], []
    for row in rows:
        if not row["removed_by"]:
            sft.append(sft_example(row, recipe.sft_response))
            pairs += contrastive_pairs(row, recipe.pairs_per_question)
    write_jsonl(out / "sft.jsonl", sft)
    write_jsonl(out / "pairs.jsonl", pairs)
    counts = {
        "questions": len(items),
        "sampled": len(rows),
        "failed": failed,
        "agree": len(sft),
        "sft_rows": len(sft),
        "questions_with_contrast": len({p["row"] for p in pairs}),
        "pairs": len(pairs),
        **reference_check(rows, same),
    }
    files = {"samples": str(samples_path), "sft": str(out / "sft.jsonl"), "pairs": str(out / "pairs.jsonl")}
    identity.pop("method")
    code = finish(
        out,
        NAME,
        {**identity, "agreement": recipe.agreement, "sft_response": recipe.sft_response},
        counts,
        files,
        removal_counts(rows),
        len(sft),
        "agreeing questions",
    )
    return 1 if failed else code


def answer_rule(kind: str, pattern: str | None):
    """(extract(text) -> answer or None, same(a, b) -> bool) for the recipe's `extract`."""
    if kind == "math":
        from posttrain.rewards.math import answers_match, extract_answer

        return extract_answer, answers_match
    from posttrain.rewards.extract import canonical_text, get_extractor

    extractor = get_extractor(kind, pattern)
    return extractor, lambda a, b: canonical_text(a) == canonical_text(b)


def few_shot_messages(path: str | None) -> list[dict]:
    if not path:
        return []
    from posttrain.data.sources import load_records

    loaded = load_records(path, "conversation")
    if not loaded.records:
        raise UserError(f"{path}: no few-shot conversations in the file")
    return [m for record in loaded.records for m in record.messages]


def sample_batch(batch, weak: ChatModel, strong: ChatModel, shots, recipe: Recipe, extract, seed: int) -> BatchOutput:
    weak_out = weak.ask(
        [item["messages"] for item in batch], seed=seed, temperature=0.0 if recipe.weak_greedy else None
    )
    strong_out = strong.ask([shots + item["messages"] for item in batch], n=recipe.n_strong, seed=seed)
    rows, failures = [], []
    for item, w, s in zip(batch, weak_out, strong_out):
        failed = next((r for r in (w, s) if not isinstance(r, list)), None)
        if failed is not None:
            failures.append({"row": item["row"], "error": failed.error})
            continue
        rows.append(
            {
                "row": item["row"],
                "prompt": item["messages"],
                "reference": item["reference"],
                "weak": {"text": w[0], "answer": extract(w[0])},
                "strong": [{"text": t, "answer": extract(t)} for t in s],
            }
        )
    return BatchOutput(rows, failures)


def answer_groups(answers: list[str | None], same) -> list[list[int]]:
    """Indexes of the parsed answers grouped by equivalence, in order of first appearance."""
    groups: list[list[int]] = []
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        group = next((g for g in groups if same(answer, answers[g[0]])), None)
        if group is None:
            groups.append([i])
        else:
            group.append(i)
    return groups


def decide(row: dict, same, agreement: str) -> dict:
    """The row with `agreeing` (indexes of strong samples with the weak answer) and `removed_by`."""
    weak_answer = row["weak"]["answer"]
    answers = [s["answer"] for s in row["strong"]]
    groups = answer_groups(answers, same)
    agreeing = [i for i, a in enumerate(answers) if a is not None and weak_answer is not None and same(weak_answer, a)]
    top = max((len(g) for g in groups), default=0)
    if weak_answer is None:
        removed = "weak_no_answer"
    elif not groups:
        removed = "strong_no_answer"
    elif (len(agreeing) == top) if agreement == "majority" else agreeing:
        removed = None
    else:
        removed = "disagree"
    return {**row, "agreeing": agreeing, "strong_groups": len(groups), "removed_by": removed}


def sft_example(row: dict, response: str) -> dict:
    text = row["weak"]["text"] if response == "weak" else row["strong"][row["agreeing"][0]]["text"]
    return {
        "messages": [*row["prompt"], {"role": "assistant", "content": text}],
        "row": row["row"],
        "answer": row["weak"]["answer"],
    }


def contrastive_pairs(row: dict, limit: int) -> list[dict]:
    chosen = [row["strong"][i]["text"] for i in row["agreeing"]]
    rejected = [s["text"] for i, s in enumerate(row["strong"]) if i not in row["agreeing"]]
    if not chosen or not rejected:
        return []
    return [
        {
            "prompt": row["prompt"],
            "chosen": [{"role": "assistant", "content": chosen[k % len(chosen)]}],
            "rejected": [{"role": "assistant", "content": rejected[k]}],
            "row": row["row"],
        }
        for k in range(min(limit, len(rejected)))
    ]


def reference_check(rows: list[dict], same) -> dict:
    """How many kept questions with a reference have the agreed answer right (a diagnostic)."""
    graded = [r for r in rows if not r["removed_by"] and r.get("reference") is not None]
    if not graded:
        return {}
    right = sum(same(r["weak"]["answer"], str(r["reference"])) for r in graded)
    return {"kept_with_reference": len(graded), "kept_correct": right}
