"""Issue 30 item 4: one writer per data-job output. A second job on an output another process is
writing is refused in one line naming that process; it neither crashes nor touches the output."""

import os
import subprocess
import sys

import pytest

from posttrain.data.jobs import BatchOutput, JobSpec, run_job
from posttrain.errors import UserError

HOLD = """
import sys
from pathlib import Path
from posttrain.data.jobs import lock_job_output
lock_job_output(Path(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
"""


def _spec(out):
    return JobSpec(out=out, batch_size=2, identity={"model": "m"}, show_progress=False)


def _double(batch, index):
    return BatchOutput([{"x": x, "y": 2 * x} for x in batch])


def test_a_second_writer_is_refused_naming_the_first_and_runs_after_it_ends(tmp_path):
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"{out}.* in use by another job \(PID {holder.pid}\)"):
            run_job(list(range(5)), _double, _spec(out))
        assert not out.exists() and not out.with_name("out.jsonl.parts").exists()
    finally:
        holder.stdin.close()
        holder.wait()
    manifest = run_job(list(range(5)), _double, _spec(out))  # the lock died with its holder
    assert manifest["counts"]["rows_out"] == 5


def test_the_same_process_may_run_its_job_again(tmp_path):
    out = tmp_path / "out.jsonl"
    run_job([1, 2], _double, _spec(out))
    assert run_job([1, 2], _double, _spec(out))["counts"]["rows_out"] == 2
    from posttrain.data.jobs import lock_job_output

    lock_job_output(out)  # re-entrant within one process, as training's run-directory lock
