"""`posttrain dpo` (and `posttrain reward`) with and without preference.shared_prefix, and packed
(data.pack): the same
training run (losses and every logged metric to 1e-5), one forward row per pair instead of two,
or several pairs per row."""

import logging

from posttrain.cli import main
from posttrain.log import read_metrics
from tests.integration.conftest import write_jsonl

# what depends on the layout: time, throughput (tokens are counted per row), memory
NOT_COMPARED = ("time", "tok", "memory", "rss", "_s")


def _pairs():
    rows = []
    for k in range(24):
        right, wrong = ("even", "odd") if k % 2 == 0 else ("odd", "an odd number, surely")
        rows.append({"prompt": f"Is {k * 37} even or odd? " + "Think. " * (k % 4), "chosen": right, "rejected": wrong})
    return rows


def _run(tmp_path, tiny_dir, data, shared, pack=False, stage="dpo"):
    out = tmp_path / f"{stage}-shared-{shared}-{pack}"
    args = [stage, str(tmp_path / "empty.yaml"), "--output-dir", str(out)]
    for s in (
        f"model={tiny_dir}",
        f"data=[{data}]",
        "train.micro_batch_size=4",
        "train.grad_accum_steps=2",
        "train.max_steps=3",
        "train.log_every=1",
        "data.eval_fraction=0.25",
        "train.eval_every=3",
        "train.lr=1e-3",
        f"preference.shared_prefix={str(shared).lower()}",
        f"data.pack={str(pack).lower()}",
    ):
        args += ["--set", s]
    assert main(args) == 0
    return read_metrics(out)


def _assert_same_runs(separate, other):
    compared = 0
    for a, b in zip(separate, other, strict=True):
        for key, value in a.items():
            # at step 1 the policy is the reference: margins are 0 up to float noise, and
            # accuracy [margin > 0] is that noise's sign
            noise = a.get("step") == 1 and "accuracy" in key
            if isinstance(value, float) and not noise and not any(part in key for part in NOT_COMPARED):
                # 1e-5, relative for the summed log-probs (about -19 here: float32 rounding after
                # two updates is a few 1e-6 of that)
                assert abs(a[key] - b[key]) < 1e-5 * max(1.0, abs(a[key])), (a.get("step"), key, a[key], b[key])
                compared += 1
    assert compared >= 3 * 3, separate  # three steps' losses and statistics at least


def test_dpo_run_logs_the_same_metrics_separate_shared_and_packed(tmp_path, tiny_dir, caplog):
    caplog.set_level(logging.WARNING)
    (tmp_path / "empty.yaml").write_text("{}\n")
    data = write_jsonl(tmp_path / "pairs.jsonl", _pairs())
    separate = _run(tmp_path, tiny_dir, data, False)
    _assert_same_runs(separate, _run(tmp_path, tiny_dir, data, True))
    _assert_same_runs(separate, _run(tmp_path, tiny_dir, data, True, pack=True))
    assert not any("cannot take the shared-prefix mask" in r.getMessage() for r in caplog.records)


def test_reward_model_run_logs_the_same_metrics_separate_and_shared(tmp_path, tiny_dir):
    (tmp_path / "empty.yaml").write_text("{}\n")
    data = write_jsonl(tmp_path / "pairs.jsonl", _pairs())
    separate = _run(tmp_path, tiny_dir, data, False, stage="reward")
    _assert_same_runs(separate, _run(tmp_path, tiny_dir, data, True, stage="reward"))


def test_kto_run_logs_the_same_metrics_unpacked_and_packed(tmp_path, tiny_dir, caplog):
    caplog.set_level(logging.WARNING)
    (tmp_path / "empty.yaml").write_text("{}\n")
    data = write_jsonl(tmp_path / "pairs.jsonl", _pairs())  # each pair: a desirable and an undesirable example
    rows = _run(tmp_path, tiny_dir, data, True, stage="kto")
    _assert_same_runs(rows, _run(tmp_path, tiny_dir, data, True, pack=True, stage="kto"))
    assert not any("cannot take the segment mask" in r.getMessage() for r in caplog.records)
