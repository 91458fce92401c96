"""Bad input through the CLI as a user runs it: exit status 2, exactly one line on stderr naming the
file or key, no traceback, and whatever the output directory held before left as it was.

Most cases call `posttrain.cli.main` in-process (fast); `test_no_traceback_in_a_real_process` runs a
few of them through `python -m posttrain` to show the same holds in a subprocess.
"""

import json
import shutil

import pytest

from posttrain.cli import main
from tests.integration.conftest import run_cli, write_jsonl


def snapshot(directory):
    """Every file under `directory` with its bytes: what a failed run must not change."""
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def earlier(tmp_path):
    """An output directory holding earlier outputs (not a run: no checkpoints or metrics)."""
    out = tmp_path / "out"
    (out / "final").mkdir(parents=True)
    (out / "notes.txt").write_text("kept\n")
    (out / "final" / "model.safetensors").write_bytes(b"earlier weights")
    return out


def fails_with(capsys, argv, *fragments, out=None):
    before = snapshot(out) if out is not None else None
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(("posttrain: error: ", "posttrain ")), err
    for fragment in fragments:
        assert fragment in err, err
    if out is not None:
        after = snapshot(out)
        assert {k: v for k, v in after.items() if k in before} == before
    return err


@pytest.fixture
def recipe(tmp_path, tiny_dir, small_data):
    def make(body: str = "", data: str | None = None, model: str | None = None):
        path = tmp_path / "r.yaml"
        path.write_text(
            f"model: {model or tiny_dir}\ndata: [{data or small_data['sft']}]\n"
            f"train: {{micro_batch_size: 2, max_steps: 1}}\n{body}"
        )
        return path

    return make


# ---- recipe values out of range: rejected with the valid range -------------------------------

OUT_OF_RANGE = [
    ("train.micro_batch_size=0", "train.micro_batch_size", "greater than 0"),
    ("train.micro_batch_size=-1", "train.micro_batch_size", "greater than 0"),
    ("train.grad_accum_steps=0", "train.grad_accum_steps", "greater than 0"),
    ("train.log_every=0", "train.log_every", "greater than 0"),
    ("train.logprob_chunk_size=0", "train.logprob_chunk_size", "greater than 0"),
    ("train.betas=[2, 3]", "train.betas.0", "less than 1"),
    ("train.betas=[0.9, -0.1]", "train.betas.1", "greater than or equal to 0"),
    ("train.max_steps=0", "train.max_steps", "greater than 0"),
    ("train.max_grad_norm=-1", "train.max_grad_norm", "greater than or equal to 0"),
    ("train.weight_decay=-0.1", "train.weight_decay", "greater than or equal to 0"),
    ("train.save_every=-1", "train.save_every", "greater than or equal to 0"),
    ("train.lr=0", "train.lr", "greater than 0"),
    ("train.lr=1e400", "train.lr", "a finite number"),
    ("grpo.clip_eps=.inf", "grpo.clip_eps", "a finite number"),
    ("train.warmup_ratio=1.5", "train.warmup_ratio", "less than or equal to 1"),
    ("train.keep_last=0", "train.keep_last", "greater than 0"),
    ("data.max_length=0", "data.max_length", "greater than 0"),
    ("data.eval_fraction=1.0", "data.eval_fraction", "less than 1"),
    ("data.eval_fraction=-0.1", "data.eval_fraction", "greater than or equal to 0"),
    ("data.max_row_bytes=0", "data.max_row_bytes", "greater than 0"),
    ("data.sources.0.weight=-1", "data.sources.0.weight", "greater than or equal to 0"),
    ("data.sources.0.weight=0", "data: sources: every source weight is 0", "> 0"),
    ("grpo.clip_eps=-0.1", "grpo.clip_eps", "greater than or equal to 0"),
    ("grpo.top_p=0", "grpo.top_p", "greater than 0"),
    ("preference.beta=0", "preference.beta", "greater than 0"),
    ("adapter.r=0", "adapter.r", "greater than 0"),
    ("eval.batch_size=0", "eval.batch_size", "greater than 0"),
    ("seed=-1", "seed", "greater than or equal to 0"),
]


@pytest.mark.parametrize("override,key,valid", OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_out_of_range_value_is_rejected_with_its_range(capsys, recipe, earlier, override, key, valid):
    err = fails_with(
        capsys, ["sft", recipe(), "--set", override, "--output-dir", earlier], f"r.yaml: {key}", valid, out=earlier
    )
    assert not (earlier / "config.yaml").exists(), err  # rejected before anything was written


def test_no_epochs_and_no_max_steps(capsys, recipe, earlier):
    fails_with(
        capsys,
        ["sft", recipe(), "--set", "train.max_steps=null", "--set", "train.epochs=0", "--output-dir", earlier],
        "train: epochs must be > 0 when max_steps is not set",
        out=earlier,
    )


@pytest.mark.parametrize(
    "phase,problem",
    [
        ("{weights: {sft: 0}}", "at least one source weight > 0"),
        ("{weights: {sft: -1}}", "greater than or equal to 0"),
        ("{steps: 0, weights: {sft: 1}}", "greater than 0"),
    ],
)
def test_bad_curriculum_phase(capsys, recipe, earlier, phase, problem):
    fails_with(
        capsys,
        ["pretrain", recipe(), "--set", f"data.phases=[{phase}]", "--output-dir", earlier],
        "data.phases.0.",
        problem,
        out=earlier,
    )


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_num_processes_below_one(capsys, recipe, earlier, value):
    with pytest.raises(SystemExit) as exit_:
        main(["sft", str(recipe()), "--num-processes", value, "--output-dir", str(earlier)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--num-processes: expected an integer >= 1" in err, err


# ---- recipe files and --set ---------------------------------------------------------------------


def test_duplicated_key_names_the_key_and_both_lines(capsys, recipe, earlier):
    path = recipe("train:\n  lr: 0.1\n")  # `train` is already on line 3
    fails_with(
        capsys,
        ["sft", path, "--output-dir", earlier],
        f"{path}: line 4: duplicated key 'train' (first at line 3)",
        out=earlier,
    )
    path.write_text("model: tiny\ntrain:\n  lr: 0.1\n  micro_batch_size: 2\n  lr: 0.2\n")
    fails_with(
        capsys, ["sft", path, "--output-dir", earlier], "line 5: duplicated key 'lr' (first at line 3)", out=earlier
    )


@pytest.mark.parametrize(
    "override,problem",
    [
        ("train.lr=[", "--set 'train.lr=[': the value is not valid YAML"),
        ("train.lr=!!python/name:os.system", "could not determine a constructor for the tag"),
        ("train.lr={a: ", "not valid YAML"),
    ],
)
def test_set_value_that_is_not_yaml(capsys, recipe, earlier, override, problem):
    fails_with(capsys, ["sft", recipe(), "--set", override, "--output-dir", earlier], problem, out=earlier)


def test_recipe_with_a_python_tag(capsys, recipe, earlier):
    path = recipe("stage: !!python/object/apply:os.system [echo hi]\n")
    fails_with(capsys, ["sft", path, "--output-dir", earlier], f"{path}: not valid YAML", "line 4", out=earlier)


def test_recipe_that_is_not_utf8(capsys, tmp_path, earlier):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("model: caf\u00e9\n".encode("latin-1"))
    fails_with(capsys, ["sft", path, "--output-dir", earlier], f"{path}: not UTF-8 text (byte offset 10", out=earlier)


# ---- model directories --------------------------------------------------------------------------


def _broken_model(tmp_path, tiny_dir, damage):
    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    damage(model)
    return model


def _truncate(model):
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _garbage(model):
    (model / "model.safetensors").write_bytes(b"not a safetensors file" * 8)


def _wider_config(model):
    config = json.loads((model / "config.json").read_text())
    config["hidden_size"] *= 2
    (model / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage,problem",
    [
        (_truncate, "a weights file (*.safetensors) is damaged or truncated"),
        (_garbage, "a weights file (*.safetensors) is damaged or truncated"),
        (_wider_config, "the weights do not match config.json"),
    ],
)
def test_broken_model_directory(capsys, recipe, tmp_path, tiny_dir, earlier, damage, problem):
    model = _broken_model(tmp_path, tiny_dir, damage)
    fails_with(
        capsys,
        ["sft", recipe(model=str(model)), "--output-dir", earlier],
        f"cannot load model '{model}'",
        problem,
        out=earlier,
    )


def test_model_path_that_is_not_a_model_directory(capsys, recipe, tmp_path, earlier):
    (tmp_path / "empty").mkdir()
    fails_with(
        capsys,
        ["sft", recipe(model=str(tmp_path / "empty")), "--output-dir", earlier],
        f"cannot load model '{tmp_path / 'empty'}': not a model directory (no config.json)",
        out=earlier,
    )
    (tmp_path / "a_file").write_text("x")
    fails_with(
        capsys,
        ["sft", recipe(model=str(tmp_path / "a_file")), "--output-dir", tmp_path / "o2"],
        f"cannot load model '{tmp_path / 'a_file'}': a file, not a model directory",
    )


def test_flash_attention_where_it_cannot_run(capsys, recipe, earlier):
    pytest.importorskip("torch")
    try:
        import flash_attn  # noqa: F401

        pytest.skip("flash-attn is installed here")
    except ImportError:
        pass
    fails_with(
        capsys,
        ["sft", recipe(), "--set", "model.attn_implementation=flash_attention_2", "--output-dir", earlier],
        "model.attn_implementation cannot run here",
        "use sdpa or eager",
        out=earlier,
    )


def test_broken_model_for_generate_and_eval(capsys, tmp_path, tiny_dir):
    model = _broken_model(tmp_path, tiny_dir, _truncate)
    fails_with(capsys, ["generate", model, "--prompt", "hi"], f"'{model}'", "damaged or truncated")
    fails_with(
        capsys,
        ["eval", model, "--tasks", "arithmetic", "--output-dir", tmp_path / "e"],
        f"'{model}'",
        "damaged or truncated",
    )


# ---- output directories -------------------------------------------------------------------------


def test_output_dir_that_is_a_file(capsys, recipe, tmp_path):
    out = tmp_path / "a_file"
    out.write_text("earlier")
    fails_with(capsys, ["sft", recipe(), "--output-dir", out], f"--output-dir {out}: exists and is not a directory")
    assert out.read_text() == "earlier"


def test_output_dir_under_a_file(capsys, recipe, tmp_path):
    parent = tmp_path / "a_file"
    parent.write_text("earlier")
    fails_with(
        capsys,
        ["sft", recipe(), "--output-dir", parent / "run"],
        f"--output-dir {parent / 'run'}: a parent path is a file",
    )
    assert parent.read_text() == "earlier"


def test_output_dir_that_cannot_be_created(capsys, recipe):
    # The tests may run as root, whom chmod does not stop; /sys refuses new directories even to root.
    fails_with(
        capsys,
        ["sft", recipe(), "--output-dir", "/sys/posttrain-run"],
        "--output-dir /sys/posttrain-run: cannot create it",
    )


def test_no_traceback_in_a_real_process(recipe, tmp_path, earlier):
    cases = [
        (["--set", "train.micro_batch_size=0"], "train.micro_batch_size"),
        (["--set", "train.lr=!!python/name:os.system"], "not valid YAML"),
        (["--output-dir", tmp_path / "f" / "run"], "a parent path is a file"),
    ]
    (tmp_path / "f").write_text("a file")
    for extra, fragment in cases:
        before = snapshot(earlier)
        proc = run_cli("sft", recipe(), "--output-dir", earlier, *extra, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and fragment in proc.stderr, proc.stderr
        assert snapshot(earlier) == before


# ---- data files ---------------------------------------------------------------------------------

CHAT = {"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]}
GOOD_ROW = json.dumps(CHAT).encode() + b"\n"
BAD_DATA = [
    (
        "latin1",
        b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n',
        "row 2: field '(utf-8)': not UTF-8 text: byte 0xe9 at byte offset",
    ),
    ("deep", b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "row 2: field '(json)': nested too deeply"),
    (
        "surrogate",
        GOOD_ROW.replace(b'"4"', b'"4\\ud800"'),
        "row 2: field 'messages[1].content': lone surrogate \\ud800",
    ),
    (
        "huge",
        json.dumps({"messages": [CHAT["messages"][0], {"role": "assistant", "content": "x" * (1 << 20)}]}).encode()
        + b"\n",
        "row 2: field '(row)': 1048676 bytes, above data.max_row_bytes 1048576",
    ),
]


@pytest.mark.parametrize("name,second_row,problem", BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_data_row_names_file_and_row(capsys, recipe, tmp_path, earlier, name, second_row, problem):
    data = tmp_path / f"{name}.jsonl"
    data.write_bytes(GOOD_ROW + second_row + GOOD_ROW)
    fails_with(capsys, ["sft", recipe(data=str(data)), "--output-dir", earlier], f"{data}: {problem}", out=earlier)


def test_a_directory_where_the_data_file_should_be(capsys, recipe, tmp_path, earlier):
    # As root no permission bit stops a read; a directory named like the file cannot be read as one.
    data = tmp_path / "sft.jsonl"
    data.mkdir()
    fails_with(
        capsys,
        ["sft", recipe(data=str(data)), "--output-dir", earlier],
        f"{data}: directory is not a dataset written by save_to_disk",
        out=earlier,
    )


def test_perplexity_text_that_is_not_utf8(capsys, tiny_dir, tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(b"hello\nworld \xff\n")
    fails_with(
        capsys,
        ["eval", tiny_dir, "--tasks", "perplexity", "--data", f"perplexity={text}", "--output-dir", tmp_path / "e"],
        f"{text}: line 2: not UTF-8 text: byte 0xff at byte offset 12",
    )


def test_skipped_bad_rows_and_an_unwritable_cache_warn_once(recipe, tmp_path, monkeypatch, caplog):
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(GOOD_ROW * 4 + BAD_DATA[0][1] + GOOD_ROW * 4)
    (tmp_path / "cache").write_text("a file where the cache directory should be")
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    with pytest.warns(UserWarning) as warned:
        assert (
            main(
                [
                    "sft",
                    str(recipe(data=str(data))),
                    "--set",
                    "data.on_error=skip",
                    "--set",
                    "data.eval_fraction=0.2",
                    "--output-dir",
                    str(tmp_path / "o"),
                ]
            )
            == 0
        )
    skipped = [w for w in warned if "skipped" in str(w.message)]
    assert len(skipped) == 1 and "skipped 1 invalid row (first: row 5 field '(utf-8)'" in str(skipped[0].message)
    assert sum("cannot be written" in r.getMessage() for r in caplog.records) == 1  # train + held-out: once
    assert (tmp_path / "o" / "final" / "model.safetensors").is_file()


# ---- valid but pointless: a warning, once ---------------------------------------------------------


def warned_once(caplog, fragment):
    return sum(fragment in record.getMessage() for record in caplog.records) == 1


def run_with(tmp_path, command, settings, out):
    """`posttrain COMMAND empty-recipe --set ...` in-process; returns the exit status."""
    path = tmp_path / "empty.yaml"
    path.write_text("{}\n")
    return main([command, str(path), *[a for s in settings for a in ("--set", s)], "--output-dir", str(tmp_path / out)])


def test_identical_pairs_and_one_sided_kto_labels_warn_once(tmp_path, tiny_dir, caplog):
    same = [{"prompt": f"{n} + {n}?", "chosen": f"{2 * n}", "rejected": f"{2 * n}"} for n in range(8)]
    pairs = write_jsonl(tmp_path / "same.jsonl", same)
    base = [f"model={tiny_dir}", "train.micro_batch_size=2", "train.max_steps=1", "data.eval_fraction=0.25"]
    assert run_with(tmp_path, "dpo", base + [f"data=[{pairs}]"], "d") == 0
    assert warned_once(caplog, f"{pairs}: every pair has chosen == rejected")
    good = [{"prompt": f"{n} + {n}?", "completion": f"{2 * n}", "label": True} for n in range(8)]
    unpaired = write_jsonl(tmp_path / "good.jsonl", good)
    assert run_with(tmp_path, "kto", base + [f"data=[{unpaired}]"], "k") == 0
    assert warned_once(caplog, "every KTO training example is desirable")


def test_group_of_one_and_a_verifier_without_references_warn_once(tmp_path, tiny_dir, caplog):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"What is {n} + 1?"} for n in range(4)])
    settings = [
        f"model={tiny_dir}",
        f"data=[{prompts}]",
        "train.micro_batch_size=2",
        "train.max_steps=1",
        "grpo.group_size=1",
        "grpo.prompts_per_step=2",
        "grpo.max_new_tokens=4",
        "grpo.rewards=[{name: math}]",
    ]
    assert run_with(tmp_path, "grpo", settings, "g") == 0
    assert warned_once(caplog, "grpo.group_size 1 with grpo.advantage group_std: every advantage is 0")
    assert warned_once(caplog, "reward math compares with a reference answer, but no prompt row has one")


def test_evaluation_prompts_that_ask_nothing_warn_once(tmp_path, tiny_dir, caplog):
    rows = [
        {"prompt": "What is 2 + 2?", "reference": "4"},
        {"prompt": "  ", "reference": "1"},
        {"prompt": {"text": "hi"}, "reference": "2"},
    ]
    data = write_jsonl(tmp_path / "gen.jsonl", rows)
    assert (
        main(
            [
                "eval",
                str(tiny_dir),
                "--tasks",
                "generation",
                "--data",
                f"generation={data}",
                "--set",
                "max_new_tokens=2",
                "--output-dir",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    assert warned_once(caplog, f"{data}: 2 of 3 prompts are empty or not text (first: row 2: empty prompt)")
