"""Which keys land on which chart (the names the stages really log), curves thinned but ending at
the last step, and a page with nothing remote in it that escapes what the runs wrote."""

import re

from posttrain.log import Series
from posttrain.report.charts import charts_for, thin
from posttrain.report.collect import Run
from posttrain.report.html import external_references, render_report


def _run(label, stage, keys, steps=5, rollouts=()):
    series = {k: Series(list(range(1, steps + 1)), [float(i) for i in range(steps)]) for k in keys}
    return Run(None, label, stage, "stage: x\n", series, [], list(rollouts))


GRPO_KEYS = [
    "loss",
    "lr",
    "reward",
    "reward/exact_match",
    "reward/format",
    "accuracy",
    "response_length",
    "truncated",
    "kl",
    "clip_fraction",
    "entropy",
    "tokens_per_s",
    "peak_rss_gb",
    "step_tokens",
]


def test_grpo_keys_go_to_their_charts_and_unknown_keys_get_their_own():
    charts = {c.spec.id: c for c in charts_for([_run("g", "grpo", [*GRPO_KEYS, "new_metric"])])}
    assert {
        "loss",
        "lr",
        "reward",
        "accuracy",
        "response_length",
        "truncated",
        "kl",
        "clip_fraction",
        "entropy",
        "tokens_per_s",
        "memory",
        "metric-new_metric",
    } == set(charts)  # step_tokens: bookkeeping
    assert [c.label for c in charts["reward"].curves] == ["reward", "reward/exact_match", "reward/format"]


def test_dpo_train_and_held_out_keys_share_a_chart_and_overlay_by_run():
    keys = ["loss", "eval_loss", "logps_chosen", "logps_rejected", "eval_logps_chosen", "rewards_margin"]
    charts = {c.spec.id: c for c in charts_for([_run("a", "dpo", keys), _run("b", "dpo", keys[:2])])}
    logps = charts["logps"].curves
    assert [c.label for c in logps] == ["a: logps_chosen", "a: logps_rejected", "a: eval_logps_chosen"]
    assert [c.held_out for c in logps] == [False, False, True]
    assert logps[0].variant != logps[1].variant  # chosen vs rejected told apart by line style
    loss = charts["loss"].curves
    assert len({c.color for c in loss}) == 2 and len(loss) == 4  # a colour per run
    svg = charts["loss"].svg
    assert svg.startswith("<svg") and "<?xml" not in svg and "DOCTYPE" not in svg
    assert len(re.findall(r'<g id="loss-curve-\d"', svg)) == 4


def test_thin_keeps_at_most_the_limit_and_the_last_point():
    series = Series(list(range(10_001)), [float(i) for i in range(10_001)])
    steps, values = thin(series, 1000)
    assert len(steps) <= 1001 and steps[0] == 0 and steps[-1] == 10_000 and values[-1] == 10_000.0
    short = Series([1, 2], [0.5, 0.25])
    assert thin(short, 1000) == ([1, 2], [0.5, 0.25])


def test_page_is_self_contained_and_escapes_run_text():
    hostile = {
        "batch": 0,
        "prompt": "<script>alert(1)</script>",
        "completion": "<img src=https://x.io/a.png>",
        "reference": "1",
        "reward": 1.0,
    }
    page = render_report([_run("a<b>", "grpo", ["loss", "reward"], rollouts=[hostile]), _run("b", "sft", ["loss"])])
    assert "<script>" not in page and "&lt;script&gt;" in page and "a&lt;b&gt;" in page
    assert external_references(page) == []
    assert external_references("<svg><use xlink:href='#m1'/></svg>") == []  # local ids are fine
    assert external_references("<p><img src='https://x.io/a.png'></p>") == ["<img>", "img src=https://x.io/a.png"]
    assert page.count("<figure class='chart'") == 2  # loss (both runs overlaid) and reward
