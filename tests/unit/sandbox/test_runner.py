"""The sandbox's security tests: each hostile program is stopped or denied, and the denial is
recorded in the result (status, reason) rather than noticed by luck. Isolation the kernel does
not grant is a skip naming what is missing, never a silent pass."""

import os
import shutil
import socket
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from posttrain.errors import UserError
from posttrain.sandbox import Limits, run_command, run_python, scrubbed_env
from posttrain.sandbox.runner import FIRST_PRIVATE_UID, sandbox_python


def _require(result, key):
    if not result.isolation.get(key):
        pytest.skip(f"{key} is not available on this kernel: {result.isolation}")


def _private_uid_processes() -> list[int]:
    """Processes still running under a sandbox's private uid (none once a run has returned)."""
    alive = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) >= FIRST_PRIVATE_UID:
            alive.append(int(status.parent.name))
    return alive


def test_a_plain_program_runs_in_an_empty_directory_with_a_minimal_environment():
    result = run_python("import os, json; print(json.dumps([os.listdir('.'), sorted(os.environ)]))")
    assert result.ok and result.exit_code == 0, result
    listing, env = __import__("json").loads(result.stdout)
    assert listing == ["main.py"]
    assert env == ["HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "TMPDIR"]
    assert result.reason() == ""


def test_a_failing_program_is_an_error_with_its_last_stderr_line():
    result = run_python("raise ValueError('wrong answer')")
    assert result.status == "error" and result.exit_code == 1
    assert result.reason() == "error: ValueError: wrong answer"


def test_fork_bomb_is_stopped_and_leaves_no_process():
    bomb = textwrap.dedent("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    start = time.monotonic()
    result = run_python(bomb, Limits(timeout_s=2, processes=16))
    assert result.status == "timeout" and not result.ok
    assert time.monotonic() - start < 30  # stopped, not left to run (a generous bound, not a timing test)
    if os.geteuid() == 0:
        assert result.isolation["separate_uid"]
        assert _private_uid_processes() == []


def test_processes_that_escape_the_group_die_with_the_sandbox():
    escaping = textwrap.dedent("""
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                os.setsid()
                time.sleep(1000)
        time.sleep(1000)
    """)
    result = run_python(escaping, Limits(timeout_s=1.5))
    _require(result, "pid_isolated")
    assert result.status == "timeout"
    if os.geteuid() == 0:
        assert _private_uid_processes() == []


def test_unbounded_allocation_hits_the_memory_limit():
    result = run_python("x = []\nwhile True:\n    x.append(bytearray(10 ** 7))", Limits(timeout_s=20, memory_mb=256))
    assert result.status == "memory" and result.reason() == "memory: MemoryError"


def test_infinite_sleep_times_out():
    result = run_python("import time\ntime.sleep(10 ** 6)", Limits(timeout_s=1))
    assert result.status == "timeout" and result.reason() == "timeout" and result.exit_code is None


def test_busy_loop_hits_the_cpu_time_limit():
    result = run_python("while True:\n    pass", Limits(timeout_s=60, cpu_s=1))
    assert result.status == "timeout" and result.reason() == "timeout (CPU-time limit)"


@pytest.fixture()
def open_directory():
    """A world-writable directory every user can reach (pytest's tmp_path is private to root),
    so only the sandbox's read-only mounts can stop a write into it."""
    path = Path(tempfile.mkdtemp(prefix="posttrain-sandbox-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def test_writing_outside_its_directory_is_denied(open_directory):
    target = open_directory / "escaped.txt"
    result = run_python(f"open('inside.txt', 'w').write('ok')\nopen({str(target)!r}, 'w').write('x')")
    _require(result, "filesystem_isolated")
    assert result.status == "error" and "Read-only file system" in result.reason()
    assert not target.exists()
    for path in ("/tmp/posttrain-sandbox-escape", "/dev/shm/posttrain-sandbox-escape"):
        denied = run_python(f"open({path!r}, 'w').write('x')")
        assert denied.status == "error" and not Path(path).exists(), path


def test_temporary_files_go_to_its_own_directory():
    """/tmp is read-only inside; tempfile follows TMPDIR, the work directory."""
    result = run_python(
        "import os, tempfile\nwith tempfile.NamedTemporaryFile() as f:\n"
        "    print(os.path.dirname(f.name) == os.getcwd())"
    )
    assert result.ok and result.stdout.strip() == "True", result


def test_large_files_are_cut_by_the_file_size_limit():
    result = run_python("open('big', 'w').write('x' * (4 << 20))", Limits(file_mb=1))
    assert result.status == "error" and "File too large" in result.reason()


@pytest.fixture()
def listening_server():
    """A real TCP server on loopback that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    connected, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connected.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connected
    stop.set()
    thread.join()
    server.close()


def test_opening_a_socket_reaches_nothing(listening_server):
    port, connected = listening_server
    probe = run_command([sandbox_python(), "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"])
    _require(probe, "network_isolated")
    assert probe.status == "error" and "Network is unreachable" in probe.reason()
    assert connected == []


def test_a_key_in_the_parent_environment_is_not_readable(monkeypatch):
    secret = "sk-posttrain-sandbox-test-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    direct = run_python("import os\nprint(os.environ['OPENAI_API_KEY'])")
    assert direct.status == "error" and "KeyError" in direct.reason()
    scan = textwrap.dedent(f"""
        import glob
        found = []
        for path in glob.glob('/proc/*/environ'):
            try:
                found += [path] if {secret!r} in open(path, errors='replace').read() else []
            except OSError:
                pass
        print(found)
        raise SystemExit(1 if found else 0)
    """)
    result = run_python(scan)
    assert result.ok and secret not in result.stdout + result.stderr, result


def test_secret_looking_names_are_dropped_from_a_given_environment():
    env = scrubbed_env(
        {"HF_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "s", "my_api_key": "k", "DB_PASSWORD": "p", "TEST_MODE": "1"}
    )
    assert env["TEST_MODE"] == "1"
    assert not {"HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "my_api_key", "DB_PASSWORD"} & set(env)


def test_files_are_written_into_the_directory_and_may_not_leave_it():
    result = run_python("print(open('pkg/data.txt').read())", files={"pkg/data.txt": "hello"})
    assert result.stdout.strip() == "hello"
    with pytest.raises(UserError, match="leaves the working directory"):
        run_python("pass", files={"../outside.txt": "x"})


def test_limits_are_checked():
    with pytest.raises(UserError, match="memory_mb must be > 0"):
        run_python("pass", Limits(memory_mb=0))
