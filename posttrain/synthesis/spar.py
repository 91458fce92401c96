"""SPaR (Cheng et al. 2024): the actor answers each instruction, a refiner judges whether the answer
follows it, and a rejected answer is refined by a tree search judged by the refiner
(spar_search.py); the accepted refinement and the failing original differ only where the
instruction was missed, so (refined = chosen, original = rejected) trains the actor with DPO.

    posttrain synth spar --set prompts=instructions.jsonl --set actor.model=M --set actor.backend=hf \
        --set search=bfs --set max_depth=3 --set branching=3 --set budget=15 --out OUT

The refiner is the actor itself unless `refiner` is given (the paper: the same model plays both).
Per prompt: one actor response, one judgment; accepted -> no pair (counted actor_accepted); an
unreadable verdict on it -> counted judge_unparseable, no search; rejected -> tree search (a
child whose verdict cannot be read counts as not accepted and may be refined further).
Outputs: OUT/search.jsonl (the job's record: every node of every tree with its judgment),
OUT/pairs.jsonl (`posttrain dpo` rows), OUT/refiner_sft.jsonl (the refiner's own SFT data:
`kind: judgment` rows, the judge prompt -> each readable judgment made, and `kind: refinement`
rows, the refine prompt of the accepted node's parent -> the accepted refinement),
OUT/manifest.json (counts: actor_accepted, refined, search_exhausted, judge_unparseable, calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

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
from posttrain.synthesis.spar_search import (
    JUDGE_PROMPT,
    REFINE_PROMPT,
    Judgment,
    Node,
    SearchSettings,
    parse_judgment,
    tree_search,
    vote,
)

NAME = "spar"
HELP = "SPaR: judge the actor's answers, tree-search refinements -> DPO pairs + refiner SFT data"


class Recipe(Section):
    out: str  # output directory
    prompts: str | None = None  # instruction rows (prompt / messages)
    actor: ModelSpec = ModelSpec()
    refiner: ModelSpec | None = None  # judge + refiner; the actor when unset
    search: Literal["bfs", "dfs"] = "bfs"
    max_depth: Positive = 3
    branching: Positive = 3
    budget: Annotated[int, Field(gt=0)] = 15  # refinements per prompt
    judge_samples: Positive = 1  # judgments sampled per response; the majority verdict counts
    seed: NonNegative = 0
    batch_size: Positive = 8


class _Failed(Exception):
    pass


def run(recipe: Recipe) -> int:
    if not recipe.prompts:
        raise UserError("recipe: prompts: missing (an instruction file: rows with 'prompt' or 'messages')")
    out = Path(recipe.out)
    items, _ = load_prompt_items(recipe.prompts, "fail")
    if not items:
        raise UserError(f"{recipe.prompts}: no prompts in the file")
    if recipe.refiner is not None:
        require_model(recipe.refiner, "refiner")  # both named before either is reached
    actor = ChatModel(recipe.actor, "actor")
    refiner = ChatModel(recipe.refiner, "refiner") if recipe.refiner is not None else actor
    settings = SearchSettings(recipe.search, recipe.max_depth, recipe.branching, recipe.budget)
    identity = {
        "prompts": input_identity(recipe.prompts, len(items)),
        "actor": model_identity(recipe.actor),
        "refiner": model_identity(recipe.refiner or recipe.actor),
        **recipe.model_dump(include={"search", "max_depth", "branching", "budget", "judge_samples", "seed"}),
    }
    search_path = out / "search.jsonl"
    manifest = run_model_job(
        items,
        lambda batch, b: search_batch(batch, actor, refiner, settings, recipe.seed + b, recipe.judge_samples),
        search_path,
        recipe.batch_size,
        {"method": NAME, **identity},
        "spar",
    )
    failed = job_failed(manifest, search_path)
    rows = read_jsonl(search_path)
    pairs = [spar_pair(r) for r in rows if r["removed_by"] is None]
    refiner_rows = [x for r in rows for x in refiner_examples(r)]
    write_jsonl(out / "pairs.jsonl", pairs)
    write_jsonl(out / "refiner_sft.jsonl", refiner_rows)
    counts = {
        "prompts": len(items),
        "failed": failed,
        "pairs": len(pairs),
        "refiner_sft_rows": len(refiner_rows),
        **search_counts(rows, recipe.judge_samples),
    }
    files = {
        "search": str(search_path),
        "pairs": str(out / "pairs.jsonl"),
        "refiner_sft": str(out / "refiner_sft.jsonl"),
    }
    code = finish(out, NAME, identity, counts, files, removal_counts(rows), len(pairs), "refinement pairs")
    return 1 if failed else code


def search_counts(rows: list[dict], judge_samples: int) -> dict[str, int]:
    trees = [r["search"] for r in rows if r["search"]]
    judged = len(rows) + sum(t["judgments"] for t in trees)
    return {
        "searched": len(trees),
        "actor_calls": len(rows),
        "judged_responses": judged,
        "judge_calls": judged * judge_samples,
        "refine_calls": sum(t["refinements"] for t in trees),
        "judge_unparseable": sum(r["root_unparseable"] + (r["search"] or {}).get("unparseable", 0) for r in rows),
    }


def instruction_text(messages: list[dict]) -> str:
    """The instruction the judge checks: the last user turn (earlier turns are the context)."""
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def search_batch(
    batch: list[dict], actor: ChatModel, refiner: ChatModel, settings: SearchSettings, seed: int, judge_samples: int = 1
) -> BatchOutput:
    answers = actor.ask([item["messages"] for item in batch], seed=seed)
    rows, failures = [], []
    for item, answer in zip(batch, answers):
        try:
            if not isinstance(answer, list):
                raise _Failed(answer.error)
            rows.append(search_one(item, answer[0], refiner, settings, seed, judge_samples))
        except _Failed as err:
            failures.append({"row": item["row"], "error": str(err)})
    return BatchOutput(rows, failures)


def search_one(
    item: dict, response: str, refiner: ChatModel, settings: SearchSettings, seed: int, judge_samples: int = 1
) -> dict:
    instruction = instruction_text(item["messages"])

    def judge(responses: list[str]) -> list[Judgment]:
        texts = _texts(
            refiner.ask(
                [JUDGE_PROMPT.format(instruction=instruction, response=r) for r in responses],
                n=judge_samples,
                seed=seed,
            )
        )
        return [vote([parse_judgment(t) for t in samples]) for samples in texts]

    def refine(node: Node, count: int) -> list[str]:
        prompt = REFINE_PROMPT.format(
            instruction=instruction, response=node.response, critique=node.judgment.critique or "(no critique)"
        )
        return [t.strip() for t in _texts(refiner.ask([prompt], n=count, seed=seed + node.id))[0]]

    [root] = judge([response])
    row = {
        "row": item["row"],
        "prompt": item["messages"],
        "instruction": instruction,
        "response": response,
        "judgment": vars(root),
        "root_unparseable": root.accepted is None,
        "search": None,
    }
    if root.accepted is None:
        return {**row, "removed_by": "judge_unparseable"}
    if root.accepted:
        return {**row, "removed_by": "actor_accepted"}
    result = tree_search(response, root, refine, judge, settings)
    return {
        **row,
        "search": result.as_row(),
        "removed_by": None if result.accepted is not None else f"search_exhausted_{result.stopped_by}",
    }


def _texts(results: list) -> list[list[str]]:
    failed = next((r for r in results if not isinstance(r, list)), None)
    if failed is not None:
        raise _Failed(failed.error)
    return results


def spar_pair(row: dict) -> dict:
    accepted = row["search"]["nodes"][row["search"]["accepted"]]
    return {
        "prompt": row["prompt"],
        "chosen": [{"role": "assistant", "content": accepted["response"]}],
        "rejected": [{"role": "assistant", "content": row["response"]}],
        "row": row["row"],
        "depth": accepted["depth"],
    }


def refiner_examples(row: dict) -> list[dict]:
    """Judgment rows for every readable judgment; a refinement row for the accepted refinement."""
    nodes = row["search"]["nodes"] if row["search"] else [{"response": row["response"], "judgment": row["judgment"]}]
    out = [
        _chat(
            JUDGE_PROMPT.format(instruction=row["instruction"], response=n["response"]),
            n["judgment"]["text"],
            "judgment",
            row["row"],
        )
        for n in nodes
        if n["judgment"]["accepted"] is not None
    ]
    if row["search"] and row["search"]["accepted"] is not None:
        accepted = nodes[row["search"]["accepted"]]
        parent = nodes[accepted["parent"]]
        prompt = REFINE_PROMPT.format(
            instruction=row["instruction"],
            response=parent["response"],
            critique=parent["judgment"]["critique"] or "(no critique)",
        )
        out.append(_chat(prompt, accepted["response"], "refinement", row["row"]))
    return out


def _chat(user: str, assistant: str, kind: str, row: int) -> dict:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        "kind": kind,
        "row": row,
    }
