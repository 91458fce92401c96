"""`posttrain serve` settings that cannot work: one line naming the setting, exit status 2, before the
model is loaded (no traceback)."""

import socket

import pytest

from tests.integration.conftest import run_cli


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--port", "70000"], "--port must be between 1 and 65535"),
        (["--port", "-1"], "--port must be between 1 and 65535"),
        (["--port", "0"], "--port must be between 1 and 65535"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--batch-wait-ms", "-5"], "--batch-wait-ms"),
        (["--request-timeout", "0"], "--request-timeout must be > 0"),
        (["--host", "no-such-host.invalid"], "cannot be resolved"),
    ],
)
def test_bad_setting_is_one_line_and_exit_2(tiny_dir, args, needle):
    proc = run_cli("serve", tiny_dir, *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_port_in_use_is_one_line_and_exit_2(tiny_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli("serve", tiny_dir, "--port", str(port), check=False)
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
