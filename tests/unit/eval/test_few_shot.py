from posttrain.eval.prompting import task_examples
from posttrain.eval.tasks.builtin import resolve_task


def _docs(n):
    return [{"_id": i, "subject": "ab"[i % 2], "prompt": f"q{i}"} for i in range(n)]


def test_first_sampler_takes_the_same_subjects_first_documents_but_never_the_document_itself():
    mmlu, pool = resolve_task("mmlu", ["few_shot=2"]), _docs(8)
    assert [d["_id"] for d in task_examples(mmlu, pool, pool[4])] == [0, 2]
    assert [d["_id"] for d in task_examples(mmlu, pool, pool[0])] == [2, 4]  # itself left out
    assert [d["_id"] for d in task_examples(mmlu, pool, pool[3])] == [1, 5]


def test_random_sampler_is_seeded_per_document_and_ignores_subjects_unless_grouped():
    task, pool = resolve_task("arc", ["few_shot=3"]), _docs(30)
    picks = [d["_id"] for d in task_examples(task, pool, pool[4])]
    assert picks == [d["_id"] for d in task_examples(task, pool, pool[4])] and 4 not in picks
    assert {d["subject"] for doc in pool for d in task_examples(task, pool, doc)} == {"a", "b"}
    grouped = resolve_task("arc", ["few_shot=3", "few_shot_group=subject"])
    assert all(d["subject"] == doc["subject"] for doc in pool for d in task_examples(grouped, pool, doc))
