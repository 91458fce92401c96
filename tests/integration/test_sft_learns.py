"""SFT raises held-out accuracy on the tiny model: a parity question about 3-digit numbers, whose
test numbers never appear in training. Before SFT the model cannot even answer in the format;
after it, it must beat the majority-class baseline by a wide margin (so the gain is the rule,
not only the format)."""

import random

from transformers import AutoModelForCausalLM

from posttrain.config.recipe import load_recipe
from posttrain.data.records import PromptRecord
from posttrain.eval import evaluate_tasks
from posttrain.model.load import load_tokenizer
from posttrain.stages import sft
from posttrain.train.periodic_eval import exact_match_task
from tests.integration.conftest import write_jsonl


def _parity_data(tmp_path):
    numbers = list(range(100, 1000))
    random.Random(0).shuffle(numbers)
    test, train = numbers[:80], numbers[80:]

    def answer(n):
        return "even" if n % 2 == 0 else "odd"

    rows = [
        {"messages": [{"role": "user", "content": f"Is {n} even or odd?"}, {"role": "assistant", "content": answer(n)}]}
        for n in train
    ]
    tests = [PromptRecord([{"role": "user", "content": f"Is {n} even or odd?"}], answer(n)) for n in test]
    return write_jsonl(tmp_path / "train.jsonl", rows), tests


def _accuracy(model_dir, tests, tmp_path):
    """Exact match of the whole answer, through the evaluation engine."""
    path = write_jsonl(
        tmp_path / "test.jsonl", [{"prompt": t.prompt[-1]["content"], "reference": t.reference} for t in tests]
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    task = exact_match_task(str(path), answer="text", max_new_tokens=4)
    return evaluate_tasks(model, load_tokenizer(str(model_dir)), [task])["exact_match/exact_match"]


def test_sft_raises_held_out_accuracy(tmp_path, tiny_default_dir):
    train, tests = _parity_data(tmp_path)
    majority = max(sum(t.reference == "odd" for t in tests), sum(t.reference == "even" for t in tests))
    before = _accuracy(tiny_default_dir, tests, tmp_path)
    recipe = load_recipe(
        None,
        [
            f"model={tiny_default_dir}",
            f"data=[{train}]",
            "train.micro_batch_size=16",
            "train.max_steps=100",
            "train.lr=1e-3",
            "train.warmup_steps=5",
        ],
    )
    sft.run(recipe, output_dir=str(tmp_path / "run"))
    after = _accuracy(tmp_path / "run" / "final", tests, tmp_path)
    assert before == 0.0
    assert after >= 0.9 > majority / len(tests) + 0.2, (before, after, majority)
