"""Run an untrusted program (model output) in a sandbox: its own subprocess started through
launcher.py (namespaces, read-only filesystem but for its directory, rlimits, its own uid), a
wall-clock timeout after which its whole process tree is killed, an empty temporary working
directory removed afterwards, and an environment holding only a minimal PATH/LANG/HOME.

    result = run_python("print(1 + 1)", Limits(timeout_s=3))
    result.status  # "ok" | "error" | "timeout" | "killed" | "memory"
    result.isolation  # {"network_isolated": True, "filesystem_isolated": True, ...}

What the kernel refused (no namespaces in some containers) is recorded in `isolation`, never
silently assumed; callers write it to results.json. Nothing from the program is unpickled or
imported here: only its exit status and (truncated) output are read back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from posttrain.errors import UserError

LAUNCHER = Path(__file__).with_name("launcher.py")
OUTPUT_KEPT = 4000  # characters of stdout/stderr kept in a result (the end, where errors are)
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.IGNORECASE)
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
}
FIRST_PRIVATE_UID = 2_000_000  # far above any real account's uid
_uid_counter = iter(range(1 << 30))
_uid_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock
    cpu_s: int | None = None  # default: the wall timeout rounded up, plus one
    memory_mb: int = 1024  # address space
    file_mb: int = 16  # largest file it may write (its stdout and stderr files included)
    processes: int = 32  # processes and threads it may run at once

    def check(self) -> None:
        for name in ("timeout_s", "memory_mb", "file_mb", "processes"):
            if getattr(self, name) <= 0:
                raise UserError(f"sandbox: {name} must be > 0, got {getattr(self, name)}")


@dataclass
class Result:
    status: str  # ok (exit 0), error (non-zero exit), timeout, killed (a signal), memory (MemoryError)
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    isolation: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        """One line: why the program did not succeed ('' when it did)."""
        if self.status == "ok":
            return ""
        if self.status == "timeout":
            return "timeout (CPU-time limit)" if self.signal == signal.SIGXCPU else "timeout"
        if self.status == "killed":
            return f"killed by signal {signal.Signals(self.signal).name}" if self.signal else "killed"
        last = next((line for line in reversed(self.stderr.strip().splitlines()) if line.strip()), "")
        return f"{self.status}: {last[:300]}" if last else f"exit code {self.exit_code}"

    def to_json(self) -> dict:
        return asdict(self)


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """BASE_ENV plus `extra` without any name that looks like a secret (KEY, TOKEN, SECRET, ...)."""
    kept = {k: v for k, v in (extra or {}).items() if not SECRET_NAME.search(k)}
    return {**BASE_ENV, **kept}


def run_python(source: str, limits: Limits = Limits(), files: dict[str, str] | None = None) -> Result:
    """Run `source` as main.py with sandbox_python() (-I: no user site, no PYTHON* variables)."""
    return run_command([sandbox_python(), "-I", "main.py"], limits, {**(files or {}), "main.py": source})


def sandbox_python() -> str:
    """This Python, when the program will run as this (non-root) user; as root the program runs
    under a uid of its own, which can only execute an interpreter every user may reach (a Python
    under /root is not): this one if it qualifies, else python3 on the sandbox's PATH."""
    if os.geteuid() != 0:
        return sys.executable
    candidates = [os.path.realpath(sys.executable)]
    found = shutil.which("python3", path=BASE_ENV["PATH"])
    if found:
        candidates.append(os.path.realpath(found))
    for path in candidates:
        if _reachable_by_anyone(Path(path)):
            return path
    raise UserError(
        f"sandbox: no Python interpreter that an unprivileged user may run "
        f"(tried {', '.join(candidates)}); install python3 system-wide"
    )


def _reachable_by_anyone(path: Path) -> bool:
    """Every directory above `path` is searchable, and the file executable, by 'others'."""
    import stat

    if not path.is_file() or not path.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def run_command(
    argv: list[str], limits: Limits = Limits(), files: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run argv in a fresh directory holding `files` (relative path -> text)."""
    limits.check()
    scratch = Path(tempfile.mkdtemp(prefix="posttrain-sandbox-"))
    try:
        scratch.chmod(0o711)  # the program's own uid must reach its directory, not list ours
        workdir = scratch / "work"
        workdir.mkdir()
        write_files(workdir, files or {})
        uid = _private_uid() if os.geteuid() == 0 else None
        if uid is not None:
            _chown_tree(workdir, uid)
        return _launch(
            argv, limits, workdir, scratch, uid, scrubbed_env(env) | {"HOME": str(workdir), "TMPDIR": str(workdir)}
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_files(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = (root / relative).resolve()
        if root.resolve() not in path.parents:
            raise UserError(f"sandbox: file path {relative!r} leaves the working directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _private_uid() -> int:
    with _uid_lock:
        return FIRST_PRIVATE_UID + (os.getpid() * 4096 + next(_uid_counter)) % 1_000_000


def _chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for path in root.rglob("*"):
        os.chown(path, uid, uid, follow_symlinks=False)


def _launch(argv, limits: Limits, workdir: Path, scratch: Path, uid, env) -> Result:
    read_end, write_end = os.pipe()
    cfg = {
        "argv": argv,
        "env": env,
        "workdir": str(workdir),
        "run_as_uid": uid,
        "report_fd": write_end,
        "limits": {
            "cpu_s": limits.cpu_s or int(limits.timeout_s) + 1,
            "memory_bytes": limits.memory_mb << 20,
            "file_bytes": limits.file_mb << 20,
            "processes": limits.processes,
        },
    }
    out_path, err_path = scratch / "stdout", scratch / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(LAUNCHER), json.dumps(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=BASE_ENV,
            pass_fds=(write_end,),
            start_new_session=True,
            close_fds=True,
        )
    os.close(write_end)
    lines: list[dict] = []
    try:
        proc.wait(timeout=limits.timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
        lines = _report_lines(read_end, block=False)
        _kill(proc, lines)
    lines += _report_lines(read_end, block=True)
    os.close(read_end)
    isolation = next((line for line in lines if "network_isolated" in line), {})
    ending = next((line for line in lines if "exit" in line or "signal" in line), {})
    return _result(timed_out, ending, _tail(out_path), _tail(err_path), isolation)


def _report_lines(fd: int, block: bool) -> list[dict]:
    """The launcher's JSON lines so far (block: until it closed the pipe)."""
    os.set_blocking(fd, block)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return [json.loads(line) for line in b"".join(chunks).decode().splitlines() if line.strip()]


def _kill(proc: subprocess.Popen, lines: list[dict]) -> None:
    """SIGKILL the sandbox's PID 1: the kernel kills every process of its PID namespace, and the
    launcher's wait for it returns only once they are gone; then the launcher's process group
    (without a PID namespace, all that can be reached)."""
    init_pid = next((line["init_pid"] for line in lines if "init_pid" in line), None)
    for kill, target in ((os.kill, init_pid), (os.killpg, proc.pid)):
        if target is None:
            continue
        try:
            kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if kill is os.kill:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    proc.wait()


def _tail(path: Path) -> str:
    data = path.read_bytes()
    return data[-OUTPUT_KEPT * 4 :].decode("utf-8", errors="replace")[-OUTPUT_KEPT:]


def _result(timed_out: bool, ending: dict, stdout: str, stderr: str, isolation: dict) -> Result:
    code, sig = ending.get("exit"), ending.get("signal")
    if timed_out:
        status = "timeout"
    elif sig is not None:
        status = "timeout" if sig == signal.SIGXCPU else "killed"
    elif code == 0:
        status = "ok"
    elif "MemoryError" in stderr:
        status = "memory"
    else:
        status = "error"
    return Result(status, code, sig, stdout, stderr, isolation)
