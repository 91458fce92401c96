"""Vocabulary extension and LEP on the tiny test model and the synthetic second language (the
numbers in README's "Model surgery" section). Not a speed benchmark: one pipeline, ~1 min on CPU.

    OMP_NUM_THREADS=1 .venv/bin/python bench/vocab_extension.py --out /tmp/vocab-bench

base = tiny test model pre-trained 40 steps on arithmetic prose; instruct = base + 40 SFT steps;
the base's vocabulary extended by 200 BPE merges learned on 2,000 Nordl sentences (three inits),
embeddings trained alone for 60 steps; LEP (three rules) into the instruct model. Prints tokens
per word and bits per byte on 100 held-out Nordl sentences and on held-out English prose.

    .venv/bin/python bench/vocab_extension.py --out /tmp/vocab-qs --quickstart runs/quickstart

takes base = the quickstart's pre-trained model and instruct = its SFT model instead, and adds the
instruct model's exact match on the quickstart's 200 held-out arithmetic problems before and after
each LEP rule (English kept or not).
"""

import argparse
import json
import pathlib

from posttrain.cli import main
from posttrain.config.recipe import load_recipe
from posttrain.data.synth.arithmetic import pretrain_rows, sft_rows
from posttrain.data.synth.second_language import words_per_text
from posttrain.eval.engine import run_task
from posttrain.eval.tasks.builtin import resolve_task
from posttrain.generation.backend import HFBackend
from posttrain.model.inference import load_model_and_tokenizer
from posttrain.model.tiny import build_tiny
from posttrain.stages import pretrain, sft


def _rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _train(stage, model, data, steps, out, *extra):
    recipe = load_recipe(
        None,
        [
            f"model={model}",
            f"data=[{data}]",
            "train.micro_batch_size=16",
            f"train.max_steps={steps}",
            "train.lr=3e-3",
            "train.warmup_steps=4",
            *extra,
        ],
    )
    stage.run(recipe, output_dir=str(out))
    return out / "final"


def _bits_per_byte(model_dir, data):
    model, tok = load_model_and_tokenizer(str(model_dir))
    task = resolve_task("perplexity", [f"data={data}"])
    return run_task(task, HFBackend(model, tok, batch_size=16, show_progress=False)).values()["bits_per_byte"]


def _tokens_per_word(model_dir, texts):
    _, tok = load_model_and_tokenizer(str(model_dir))
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts) / words_per_text(texts)


def _exact_match(model_dir, test_path):
    from posttrain.eval.engine import run_tasks
    from posttrain.generation.factory import make_backend
    from posttrain.train.periodic_eval import exact_match_task

    task = exact_match_task(str(test_path), "final_number", max_new_tokens=64)
    return run_tasks(make_backend(str(model_dir), "hf", batch_size=50, seed=0), [task])[0].values()["exact_match"]


def run(
    out: pathlib.Path, new_tokens: int = 200, embedding_steps: int = 60, quickstart: pathlib.Path | None = None
) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    lang = out / "lang"
    main(["surgery", "make-language", "--out", str(lang), "--train", "2000", "--heldout", "100"])
    held, english = lang / "heldout.jsonl", _rows(out / "english.jsonl", pretrain_rows(40, seed=9))
    texts = [json.loads(line)["text"] for line in held.read_text().splitlines()]
    english_lines = [r["text"] for r in pretrain_rows(500, seed=0)] + [
        m["content"] for r in sft_rows(500, seed=1) for m in r["messages"]
    ]
    keep = out / "keep.txt"  # English whose tokenisation the new merges must leave alone
    keep.write_text("\n".join(line.replace("\n", " ") for line in english_lines) + "\n")
    if quickstart is None:
        tiny = build_tiny(out / "tiny", preset="test", seed=0)
        base = _train(pretrain, tiny, _rows(out / "pt.jsonl", pretrain_rows(200, seed=0)), 40, out / "base")
        instruct = _train(sft, base, _rows(out / "sft.jsonl", sft_rows(200, seed=1)), 40, out / "instruct")
    else:
        base, instruct = quickstart / "pretrain" / "final", quickstart / "sft" / "final"
    res = {"tokens_per_word/base": _tokens_per_word(base, texts), "bpb/base": _bits_per_byte(base, held)}
    for init in ("mean", "mean_all", "random"):
        main(
            [
                "surgery",
                "extend-vocab",
                str(base),
                "--corpus",
                str(lang / "train.jsonl"),
                "--num-tokens",
                str(new_tokens),
                "--init",
                init,
                "--keep",
                str(keep),
                "--out",
                str(out / f"ext-{init}"),
            ]
        )
        res[f"bpb/extended_{init}"] = _bits_per_byte(out / f"ext-{init}", held)
    res["tokens_per_word/extended"] = _tokens_per_word(out / "ext-mean", texts)
    adapted = _train(
        pretrain, out / "ext-mean", lang / "train.jsonl", embedding_steps, out / "adapted", "adapter.kind=embeddings"
    )
    res["bpb/adapted"] = _bits_per_byte(adapted, held)
    res["bpb/instruct"], res["english_bpb/instruct"] = _bits_per_byte(instruct, held), _bits_per_byte(instruct, english)
    for method in ("swap", "overlap", "projection"):
        lep = out / f"lep-{method}"
        main(
            [
                "surgery",
                "lep",
                "--base",
                str(base),
                "--adapted",
                str(adapted),
                "--instruct",
                str(instruct),
                "--method",
                method,
                "--out",
                str(lep),
            ]
        )
        res[f"bpb/lep_{method}"], res[f"english_bpb/lep_{method}"] = (
            _bits_per_byte(lep, held),
            _bits_per_byte(lep, english),
        )
        if quickstart is not None:
            res[f"exact_match/lep_{method}"] = _exact_match(lep, quickstart / "data" / "test.jsonl")
    res["tokens_per_word/lep"] = _tokens_per_word(out / "lep-projection", texts)
    if quickstart is not None:
        res["exact_match/instruct"] = _exact_match(instruct, quickstart / "data" / "test.jsonl")
    return res


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="working directory (models and data)")
    parser.add_argument("--quickstart", type=pathlib.Path, help="a finished `posttrain quickstart` directory")
    args = parser.parse_args()
    for key, value in run(pathlib.Path(args.out), quickstart=args.quickstart).items():
        print(f"{key:32s} {value:.3f}")
