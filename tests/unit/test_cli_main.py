"""The CLI's final line (error, stop, interrupt) comes from the main process only."""

import pytest

from posttrain.cli import main


@pytest.mark.parametrize("rank, printed", [(None, True), ("0", True), ("1", False)])
def test_error_line_only_on_the_main_process(capsys, monkeypatch, tmp_path, rank, printed):
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    assert main(["sft", str(tmp_path / "missing.yaml")]) == 2  # every process keeps its status
    err = capsys.readouterr().err
    assert (err.startswith("posttrain: error: ") and "missing.yaml" in err) if printed else err == ""
