"""`posttrain report` on real tiny runs (SFT, DPO, GRPO, each evaluated by `posttrain eval`), checked
in headless Chromium with the network off: the page loads without console errors, every expected
chart is there and has drawn curves, and a screenshot is kept as a test artifact.

Chromium is Debian's package (`make test` installs it when missing), driven by playwright's
Python client through `executable_path` (no browser download). Without it the browser test skips,
except on CI (CI=true), where it fails.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.config.recipe import load_recipe
from posttrain.report.html import external_references
from posttrain.stages import dpo, grpo, sft
from tests.integration.conftest import write_jsonl

ARTIFACTS = Path(os.environ.get("POSTTRAIN_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
COMMON = [
    "data.eval_fraction=0.1",
    "train.micro_batch_size=4",
    "train.max_steps=3",
    "train.lr=1e-3",
    "train.eval_every=2",
    "train.save_every=0",
]
RUN_CHARTS = {"loss", "lr", "grad_norm", "tokens_per_s", "memory"}
DPO_CHARTS = {"rewards", "margin", "preference_accuracy", "logps"}
GRPO_CHARTS = {"reward", "accuracy", "clip_fraction", "response_length", "entropy"}


def _pairs(n):
    rows = []
    for k in range(100, 100 + n):
        right, wrong = ("even", "odd") if k % 2 == 0 else ("odd", "even")
        rows.append({"prompt": f"Is {k} even or odd?", "chosen": right, "rejected": wrong, "reference": right})
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_dir, small_data):
    """Three-step SFT, DPO from it and GRPO from it on the test-size model, each with its
    evaluation written inside the run directory as `posttrain eval --output-dir RUN/eval` does."""
    root = tmp_path_factory.mktemp("report-runs")
    write_jsonl(root / "pairs.jsonl", _pairs(24))
    sft.run(
        load_recipe(
            None,
            [
                f"model={tiny_dir}",
                f"data=[{small_data['sft']}]",
                "data.max_length=128",
                *COMMON,
                "eval.task=exact_match",
                f"eval.data={small_data['test']}",
                "eval.limit=4",
                "eval.max_new_tokens=4",
            ],
        ),
        output_dir=str(root / "sft"),
    )
    dpo.run(
        load_recipe(
            None,
            [
                f"model={root / 'sft' / 'final'}",
                *COMMON,
                f"data.sources=[{{path: {root / 'pairs.jsonl'}, kind: preference}}]",
            ],
        ),
        output_dir=str(root / "dpo"),
    )
    grpo.run(
        load_recipe(
            None,
            [
                f"model={root / 'sft' / 'final'}",
                f"data=[{root / 'pairs.jsonl'}]",
                "grpo.rewards=[{name: exact_match}]",
                "grpo.group_size=2",
                "grpo.prompts_per_step=2",
                "grpo.max_new_tokens=4",
                "grpo.samples_every=1",
                "train.micro_batch_size=4",
                "train.max_steps=2",
            ],
        ),
        output_dir=str(root / "grpo"),
    )
    for name in ("sft", "dpo", "grpo"):
        assert (
            main(
                [
                    "eval",
                    str(root / name / "final"),
                    "--tasks",
                    "arithmetic",
                    "--limit",
                    "6",
                    "--output-dir",
                    str(root / name / "eval"),
                    "--set",
                    "max_new_tokens=4",
                ]
            )
            == 0
        )
    return root


@pytest.fixture(scope="module")
def pages(runs):
    """The report of the three runs (overlaid) and of the DPO run alone."""
    out = {"overlay": runs / "runs.html", "dpo": runs / "dpo.html"}
    assert main(["report", *[str(runs / n) for n in ("sft", "dpo", "grpo")], "--out", str(out["overlay"])]) == 0
    assert main(["report", str(runs / "dpo"), "--out", str(out["dpo"])]) == 0
    return out


@pytest.mark.parametrize("name", ["overlay", "dpo"])
def test_report_has_no_remote_reference(pages, name):
    page = pages[name].read_text(encoding="utf-8")
    assert external_references(page) == []  # nothing to fetch, nothing to run
    assert "<svg" in page and "url(#" in page  # the charts, clipped by ids inside the page


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system Chromium, or a skip (a failure on CI, where `make test` installs it), decided
    before the runs are trained."""
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    path = next(
        (p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
    )
    if missing is None and path is None:
        missing = "no chromium on PATH (Debian: apt-get install chromium; `make test` does it as root)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run on CI: {missing}")
        pytest.skip(missing)
    return path


# Curves drawn: a line with extent, or markers (a held-out metric evaluated once is one marker).
DRAWN_CURVES = """figure => Array.from(figure.querySelectorAll('g[id*="-curve-"]')).filter(g => {
    const box = g.getBBox();
    return box.width > 0 || box.height > 0 || g.querySelector('use') !== null; }).length"""


def _check_in_browser(browser, page_path: Path, expected: set[str], scope: str, shot: Path) -> dict:
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems, requests = [], []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri(), wait_until="load")
    found = {}
    for figure in page.locator(f".charts[data-scope={scope}] figure.chart").all():
        box = figure.locator("svg").bounding_box()
        found[figure.get_attribute("data-chart")] = (
            box["width"] if box else 0,
            box["height"] if box else 0,
            figure.evaluate(DRAWN_CURVES),
            int(figure.get_attribute("data-curves")),
        )
    flags = [f.get_attribute("data-flag") for f in page.locator("[data-flag]").all()]
    page.screenshot(path=str(shot), full_page=True)
    context.close()
    assert problems == []
    assert requests == [page_path.as_uri()]  # the page itself, nothing else
    assert expected <= set(found), expected - set(found)
    for chart, (width, height, drawn, curves) in found.items():
        assert width > 200 and height > 100 and drawn == curves >= 1, (chart, width, height, drawn, curves)
    assert shot.stat().st_size > 20_000
    return {"charts": found, "flags": flags}


def test_report_renders_in_headless_chromium(chromium, runs, pages):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    overlay, single = pages["overlay"], pages["dpo"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            many = _check_in_browser(
                browser,
                overlay,
                RUN_CHARTS | DPO_CHARTS | GRPO_CHARTS | {"generation_eval"},
                "overlay",
                ARTIFACTS / "report-runs.png",
            )
            one = _check_in_browser(browser, single, RUN_CHARTS | DPO_CHARTS, "run", ARTIFACTS / "report-dpo.png")
        finally:
            browser.close()
    assert many["charts"]["loss"][3] == 5  # training loss of the three, held-out loss of SFT and DPO
    assert len(one["flags"]) == 1 and one["flags"][0] in ("likelihood-displacement", "no-displacement")
    page = overlay.read_text()
    assert page.count("<h3>Evaluation ") == 3 and "posttrain eval compare" in page
    samples = [json.loads(line) for line in (runs / "grpo" / "samples.jsonl").read_text().splitlines()]
    assert samples and "Latest rollouts" in page
