"""CycleQD's operators and archive by hand, and the search on a toy problem where merging
experts is the only way to score on both tasks."""

import torch

from posttrain.merging.cycleqd import (
    Archive,
    Elite,
    crossover,
    run_cycleqd,
    svd_mutation,
)


def test_crossover_draws_one_weight_per_parent():
    a, b = {"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 2.0])}
    child = crossover(a, b, torch.Generator().manual_seed(0), mu=0.5, sigma=0.1)
    w1, w2 = (0.5 + 0.1 * torch.randn(2, generator=torch.Generator().manual_seed(0))).tolist()
    assert torch.allclose(child["w"], torch.tensor([w1, 2 * w2]))


def test_svd_mutation_scales_singular_values_and_keeps_vectors():
    tau = {"m": torch.tensor([[3.0, 0.0], [0.0, 1.0]]), "bias": torch.tensor([1.0, 2.0])}
    out = svd_mutation(tau, torch.Generator().manual_seed(1), sigma=0.2)
    eps = 0.2 * torch.randn(2, generator=torch.Generator().manual_seed(1))
    # U = V = I for this diagonal matrix (singular values 3, 1 in order)
    assert torch.allclose(out["m"], torch.diag(torch.tensor([3.0, 1.0]) * (1 + eps)), atol=1e-5)
    assert torch.equal(out["bias"], tau["bias"])
    assert torch.equal(svd_mutation(tau, torch.Generator(), sigma=0.0)["m"], tau["m"])


def test_archive_keeps_the_best_per_cell():
    archive = Archive(task=0, bins=2)
    assert archive.offer(Elite({}, [0.3, 0.1], "a"))
    assert not archive.offer(Elite({}, [0.2, 0.4], "b"))  # same cell (task-1 score < 0.5), worse
    assert archive.offer(Elite({}, [0.5, 0.2], "c"))
    assert archive.offer(Elite({}, [0.1, 0.9], "d"))  # a new cell
    assert {e.name for e in archive.cells.values()} == {"c", "d"} and archive.best().name == "c"


def test_search_finds_merges_that_score_on_both_tasks():
    experts = [{"w": torch.tensor([[1.0, 0.0], [0.0, 0.0]])}, {"w": torch.tensor([[0.0, 0.0], [0.0, 1.0]])}]

    def evaluate(tau):  # task k scores the k-th diagonal entry
        return [float(tau["w"][k, k].clamp(0, 1)) for k in range(2)]

    archives = run_cycleqd(experts, evaluate, generations=20, bins=4, seed=0, mu=0.9)
    both = [e for a in archives for e in a.cells.values() if min(e.scores) > 0.5]
    assert both and all(e.name.startswith("child") for e in both)
    assert archives[0].best().scores[0] >= 1.0 and archives[1].best().scores[1] >= 1.0


def test_cycleqd_command_writes_archive_bests(family, tmp_path, capsys):
    import json

    import yaml

    from posttrain.cli import main

    tasks = []
    for name, answer in [("one", "1"), ("two", "2")]:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"prompt": f"Say {answer}", "reference": answer}) + "\n" for _ in range(2)))
        tasks.append({"data": str(path), "answer": "text", "max_new_tokens": 2, "name": name})
    recipe = tmp_path / "qd.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "base": str(family["base"]),
                "experts": [str(family["a"]), str(family["b"])],
                "tasks": tasks,
                "generations": 2,
                "limit": 2,
            }
        )
    )
    assert main(["cycleqd", str(recipe), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "cycleqd.json").read_text())
    assert len(report["experts"]) == 2 and len(report["children"]) == 2 and set(report["best"]) == {"one", "two"}
    assert (tmp_path / "out" / "best-one" / "model.safetensors").is_file()
    assert "| average of the experts |" in capsys.readouterr().out
    recipe.write_text(yaml.safe_dump({"base": str(family["base"]), "experts": [str(family["a"])], "tasks": tasks[:1]}))
    assert main(["cycleqd", str(recipe), "--out", str(tmp_path / "out2")]) == 2
