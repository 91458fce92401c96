"""Instruct-SkillMix (Kaur et al. 2024): SFT data from random pairs of skills named by a strong model.

    posttrain synth skillmix --set teacher.model=M --set teacher.base_url=URL --set n_examples=4000 --out OUT

1. Skill extraction: the teacher is asked for `n_topics` topics (TOPICS_PROMPT), then for each
   topic for `skills_per_topic` skills (SKILLS_PROMPT), and for `n_query_types` kinds of request
   (QUERY_TYPES_PROMPT) unless `query_types` is given; lists are parsed robustly (pipeline.parse_list).
   Or `skills_file` gives the skills (a text file with one per line, or JSON: a list, or an object
   with `skills` and optional `topics` / `query_types`). All of it is written to OUT/skills.json
   (a rerun reuses it while the source is the same).
2. Combinations: `n_examples` draws of k distinct skills (k=2 as the paper), seeded, no
   combination drawn twice (an error when fewer than n_examples combinations exist), each with a
   random topic and query type.
3. Generation: the teacher writes a request needing all k skills (INSTRUCTION_PROMPT), then answers
   it (ANSWER_PROMPT). The paper's finding: ~4K such rows give strong SFT, and ~20% low-quality
   answers hurt badly, so use the strongest teacher available.
Outputs: OUT/generations.jsonl (the job's record of every combination), OUT/sft.jsonl (rows
`{"messages", "skills", "topic", "query_type"}`), OUT/manifest.json. The prompts are this project's
own wording of the paper's steps.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

from posttrain.config.base import NonNegative, Positive, Section
from posttrain.data.jobs import BatchOutput, file_sha256, write_atomically
from posttrain.errors import UserError
from posttrain.generation.chat_model import ChatModel
from posttrain.generation.source import ModelSpec, model_identity
from posttrain.synthesis.pipeline import (
    finish,
    job_failed,
    parse_list,
    read_jsonl,
    removal_counts,
    run_model_job,
    sft_row,
    write_jsonl,
)

NAME = "skillmix"
HELP = "Instruct-SkillMix: k-skill combinations -> teacher-written instruction + answer"

TOPICS_PROMPT = (
    "List {n} distinct topics that people ask an AI assistant about (for example cooking, "
    "personal finance, physics). Answer with a numbered list, one topic per line, nothing else."
)
SKILLS_PROMPT = (
    "Topic: {topic}\n\nList {n} distinct skills an assistant needs to answer requests about this "
    "topic well (for example 'step-by-step explanation', 'estimating quantities', 'persuasive "
    "writing'). Name each skill in a few words. Answer with a numbered list, one skill per line, "
    "nothing else."
)
QUERY_TYPES_PROMPT = (
    "List {n} distinct kinds of request users send to an AI assistant (for example 'asking "
    "for advice', 'requesting a story', 'asking to explain a concept'). Answer with a "
    "numbered list, one kind per line, nothing else."
)
INSTRUCTION_PROMPT = (
    "Write one request that a user could send to an AI assistant.\n{context}A good answer to "
    "the request must use all of these skills:\n{skills}\nMake the request specific and "
    "self-contained. Write only the request itself, with no preamble and no answer."
)
ANSWER_PROMPT = (
    "Answer the following request as an expert assistant would. A strong answer shows these "
    "skills:\n{skills}\n\nRequest:\n{instruction}\n\nWrite only the answer."
)


class Recipe(Section):
    out: str  # output directory
    teacher: ModelSpec = ModelSpec()
    skills_file: str | None = None  # instead of asking the teacher for skills
    n_topics: Positive = 10
    skills_per_topic: Positive = 5
    n_query_types: Positive = 5
    query_types: list[str] = []  # given: the teacher is not asked for them
    k: Positive = 2  # skills per example
    n_examples: Positive = 100
    seed: NonNegative = 0
    batch_size: Positive = 16  # combinations per job chunk


def run(recipe: Recipe) -> int:
    out = Path(recipe.out)
    teacher = ChatModel(recipe.teacher, "teacher")
    inventory = skill_inventory(recipe, teacher, out / "skills.json")
    combos = skill_combinations(len(inventory["skills"]), recipe.k, recipe.n_examples, recipe.seed)
    items = combination_items(inventory, combos, recipe.seed)
    identity = {
        "method": NAME,
        "teacher": model_identity(recipe.teacher),
        "skills": inventory,
        "k": recipe.k,
        "seed": recipe.seed,
    }
    gen_path = out / "generations.jsonl"
    manifest = run_model_job(
        items,
        lambda batch, b: generate(teacher, batch, recipe.seed + b),
        gen_path,
        recipe.batch_size,
        identity,
        "skillmix",
    )
    failed = job_failed(manifest, gen_path)
    rows = read_jsonl(gen_path)
    sft = [
        sft_row(r["instruction"], r["answer"], skills=r["skills"], topic=r["topic"], query_type=r["query_type"])
        for r in rows
        if not r["removed_by"]
    ]
    write_jsonl(out / "sft.jsonl", sft)
    removed = removal_counts(rows)
    counts = {
        "skills": len(inventory["skills"]),
        "topics": len(inventory["topics"]),
        "query_types": len(inventory["query_types"]),
        "combinations": len(items),
        "generated": len(rows),
        "failed": failed,
        "sft_rows": len(sft),
        "teacher_calls": teacher.calls,
    }
    files = {"skills": str(out / "skills.json"), "generations": str(gen_path), "sft": str(out / "sft.jsonl")}
    code = finish(
        out,
        NAME,
        {"teacher": model_identity(recipe.teacher), "k": recipe.k, "seed": recipe.seed},
        counts,
        files,
        removed,
        len(sft),
        "SFT rows",
    )
    return 1 if failed else code


# ---- 1. skills ---------------------------------------------------------------------------


def skill_inventory(recipe: Recipe, teacher: ChatModel | None, path: Path) -> dict:
    """{"source", "topics", "skills": [{"name", "topic"}], "query_types"}, reused from `path`
    when an earlier run wrote it from the same source."""
    given = recipe.skills_file and Path(recipe.skills_file).is_file()
    source = (
        {"skills_file": recipe.skills_file, "sha256": file_sha256(recipe.skills_file) if given else None}
        if recipe.skills_file
        else {
            "teacher": model_identity(recipe.teacher),
            "n_topics": recipe.n_topics,
            "skills_per_topic": recipe.skills_per_topic,
        }
    )
    source["query_types"] = list(recipe.query_types) or (None if recipe.skills_file else recipe.n_query_types)
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous.get("source") == source:
            return previous
    inventory = read_skills_file(Path(recipe.skills_file)) if recipe.skills_file else extract_skills(recipe, teacher)
    if recipe.query_types:
        inventory["query_types"] = list(recipe.query_types)
    elif not inventory["query_types"] and not recipe.skills_file:
        inventory["query_types"] = _ask_list(teacher, QUERY_TYPES_PROMPT.format(n=recipe.n_query_types), "query types")[
            : recipe.n_query_types
        ]
    inventory = {"source": source, **inventory}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(inventory, indent=2, ensure_ascii=False) + "\n")
    return inventory


def extract_skills(recipe: Recipe, teacher: ChatModel) -> dict:
    topics = _ask_list(teacher, TOPICS_PROMPT.format(n=recipe.n_topics), "topics")[: recipe.n_topics]
    answers = teacher.ask([SKILLS_PROMPT.format(topic=t, n=recipe.skills_per_topic) for t in topics], seed=recipe.seed)
    skills, seen = [], set()
    for topic, answer in zip(topics, answers):
        if not isinstance(answer, list):
            raise UserError(f"teacher: asking for the skills of topic {topic!r} failed: {answer.error}")
        for name in parse_list(answer[0])[: recipe.skills_per_topic]:
            if name.casefold() not in seen:
                seen.add(name.casefold())
                skills.append({"name": name, "topic": topic})
    return {"topics": topics, "skills": skills, "query_types": []}


def _ask_list(teacher: ChatModel, prompt: str, what: str) -> list[str]:
    [answer] = teacher.ask([prompt])
    if not isinstance(answer, list):
        raise UserError(f"teacher: asking for {what} failed: {answer.error}")
    items = parse_list(answer[0])
    if not items:
        raise UserError(f"teacher: its answer when asked for {what} holds no list: {answer[0][:120]!r}")
    return items


def read_skills_file(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: skills file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
        data = {"skills": data} if isinstance(data, list) else data
        if not isinstance(data, dict) or not isinstance(data.get("skills"), list):
            raise UserError(f"{path}: expected a JSON list of skills or an object with a 'skills' list")
        skills = [_skill_entry(path, i, s) for i, s in enumerate(data["skills"])]
        topics, query_types = data.get("topics") or [], data.get("query_types") or []
        for key, value in (("topics", topics), ("query_types", query_types)):
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise UserError(f"{path}: '{key}' must be a list of non-empty strings")
    else:
        skills = [{"name": name, "topic": None} for name in parse_list(text)]
        topics, query_types = [], []
    if not skills:
        raise UserError(f"{path}: no skills in the file")
    return {"topics": topics, "skills": skills, "query_types": query_types}


def _skill_entry(path: Path, index: int, value) -> dict:
    if isinstance(value, str) and value.strip():
        return {"name": value.strip(), "topic": None}
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"].strip():
        return {"name": value["name"].strip(), "topic": value.get("topic")}
    raise UserError(f"{path}: skills[{index}]: expected a non-empty string or {{'name': ...}}, got {value!r}")


# ---- 2. combinations ---------------------------------------------------------------------


def skill_combinations(n_skills: int, k: int, n: int, seed: int) -> list[tuple[int, ...]]:
    """n distinct sets of k distinct skill indexes (each sorted), drawn uniformly with `seed`."""
    total = math.comb(n_skills, k)
    if total < n:
        raise UserError(
            f"skills: {n_skills} skills give only {total} combinations of k={k}, fewer than "
            f"n_examples={n} (add skills or lower n_examples)"
        )
    rng, seen, out = random.Random(seed), set(), []
    pool = list(itertools.combinations(range(n_skills), k)) if total <= 4 * n else None
    if pool is not None:
        return [tuple(c) for c in rng.sample(pool, n)]
    while len(out) < n:
        combo = tuple(sorted(rng.sample(range(n_skills), k)))
        if combo not in seen:
            seen.add(combo)
            out.append(combo)
    return out


def combination_items(inventory: dict, combos: list[tuple[int, ...]], seed: int) -> list[dict]:
    rng = random.Random(seed + 1)
    skills, topics, kinds = inventory["skills"], inventory["topics"], inventory["query_types"]
    return [
        {
            "index": i,
            "skills": [skills[j]["name"] for j in combo],
            "topic": rng.choice(topics) if topics else None,
            "query_type": rng.choice(kinds) if kinds else None,
        }
        for i, combo in enumerate(combos)
    ]


# ---- 3. generation -----------------------------------------------------------------------


def instruction_prompt(item: dict) -> str:
    labels = (("topic", "Topic"), ("query_type", "Kind of request"))
    context = "".join(f"{label}: {item[key]}\n" for key, label in labels if item[key])
    return INSTRUCTION_PROMPT.format(context=context, skills=_bullets(item["skills"]))


def answer_prompt(item: dict, instruction: str) -> str:
    return ANSWER_PROMPT.format(skills=_bullets(item["skills"]), instruction=instruction)


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {s}" for s in items)


def clean_instruction(text: str) -> str:
    text = text.strip()
    for label in ("Request:", "Instruction:", "User request:"):
        if text.casefold().startswith(label.casefold()):
            text = text[len(label) :].strip()
    return text.strip('"').strip()


def generate(teacher: ChatModel, batch: list[dict], seed: int) -> BatchOutput:
    """The teacher's request for each combination, then its answer to each non-empty request; an
    item whose call failed is a failure (its batch is redone by a rerun), not a row."""
    failures: list[dict] = []
    asked = teacher.ask([instruction_prompt(item) for item in batch], seed=seed)
    instructions = {i: clean_instruction(t) for i, t in _texts(batch, asked, failures).items()}
    todo = [item for item in batch if instructions.get(item["index"])]
    answered = teacher.ask([answer_prompt(item, instructions[item["index"]]) for item in todo], seed=seed)
    answers = {i: t.strip() for i, t in _texts(todo, answered, failures).items()}
    rows = []
    for item in batch:
        instruction = instructions.get(item["index"])
        if instruction is None or (instruction and item["index"] not in answers):
            continue  # a failed call
        answer = answers.get(item["index"], "")
        removed = "empty_instruction" if not instruction else "empty_answer" if not answer else None
        rows.append({**item, "instruction": instruction, "answer": answer, "removed_by": removed})
    return BatchOutput(rows, failures)


def _texts(items: list[dict], results: list, failures: list[dict]) -> dict[int, str]:
    """{item index: its one completion}; failed requests are appended to `failures`."""
    texts = {}
    for item, result in zip(items, results):
        if isinstance(result, list):
            texts[item["index"]] = result[0]
        else:
            failures.append({"item": item["index"], "error": result.error})
    return texts
