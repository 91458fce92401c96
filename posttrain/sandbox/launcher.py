"""The sandbox's launcher: run as its own script (`python -I launcher.py CONFIG_JSON`), never
imported by posttrain, so the model's program starts from a process that holds nothing of
posttrain's (no loaded model, no open files, no secrets in memory).

Steps, each recorded in the first JSON line written to the report fd (what the kernel allowed):
  1. new namespaces: network (no interface is up: no socket reaches anything), mount, PID, IPC;
     a user namespace too when not running as root (unprivileged users may create one);
  2. with a private mount namespace: the work directory bind-mounted onto itself, then every
     other writable mount remounted read-only, so the program can write only in its directory;
  3. fork: the child is PID 1 of the new PID namespace, so when it dies (or is killed through
     its parent's death signal) the kernel kills every process it started - a fork bomb included;
     it mounts a fresh /proc (other processes, and their environments, are invisible) and
     forks the program's process;
  4. in the program's process: rlimits (CPU seconds, address space, file size, processes, no core files), and when running
     as root a switch to a uid of its own (rlimits on processes do not bind root, and a private
     uid keeps concurrent sandboxes from sharing one process count);
  5. exec the program with the scrubbed environment the parent built.
PID 1 waits for the program and writes its exit code or signal as the second JSON line.
"""

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
# not remounted: /proc and /sys (not storage; writable only by root, which the program is not),
# /dev itself and /dev/pts (device nodes: /dev/null must stay writable); /dev/shm is remounted
KEPT_PREFIXES, KEPT_EXACT = ("/proc", "/sys"), ("/dev", "/dev/pts")

_libc = ctypes.CDLL(None, use_errno=True)


def _call(name, *args):
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _mount(source, target, fstype, flags):
    enc = lambda s: None if s is None else s.encode()
    _call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), None)


def enter_namespaces(as_root):
    """The namespaces the kernel grants, trying the full set first, then the network alone."""
    user = 0 if as_root else CLONE_NEWUSER
    for flags in (user | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC, user | CLONE_NEWNET):
        try:
            uid, gid = os.getuid(), os.getgid()
            _call("unshare", flags)
        except OSError:
            continue
        if user:  # map ourselves to root inside, as `unshare -r`, so mounts are allowed
            for path, text in (
                ("/proc/self/setgroups", "deny"),
                ("/proc/self/uid_map", f"0 {uid} 1"),
                ("/proc/self/gid_map", f"0 {gid} 1"),
            ):
                with open(path, "w") as f:
                    f.write(text)
        return flags
    return 0


def _mount_points():
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(set(points), key=len)


def confine_writes(workdir):
    """Only `workdir` stays writable (called only inside a private mount namespace)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount(workdir, workdir, None, MS_BIND | MS_REC)
    for point in _mount_points():
        if (
            point == workdir
            or point in KEPT_EXACT
            or any(point == k or point.startswith(k + "/") for k in KEPT_PREFIXES)
        ):
            continue
        try:
            locked = os.statvfs(point).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)
        except OSError:
            if point == "/":
                raise
    return True


def start_program(cfg, flags, report_fd):
    """In the program's own process: rlimits, its uid, its directory, then exec."""
    os.close(report_fd)
    limits = cfg["limits"]
    for name, value in (
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_CORE", 0),
    ):
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, SIGKILL a second later
        resource.setrlimit(getattr(resource, name), (value, hard))
    if cfg["run_as_uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["run_as_uid"])
        os.setuid(cfg["run_as_uid"])
    # after the uid change, which clears it: its parent's death (a timeout kill) kills it too
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1 and not flags & CLONE_NEWPID:
        os._exit(137)  # its parent is already gone
    os.chdir(cfg["workdir"])
    os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])


def init_process(cfg, flags, report_fd):
    """PID 1 of the new namespace (or a plain child without one): a fresh /proc, then the program
    as its child, so the program gets ordinary signal handling (the kernel shields PID 1 from
    signals it does not handle, SIGXCPU included); reports how the program ended."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if flags & CLONE_NEWPID and flags & CLONE_NEWNS:
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            pass
    pid = os.fork()
    if pid == 0:
        try:
            start_program(cfg, flags, report_fd)
        except BaseException as err:  # noqa: BLE001 (the program never started: say why, exit 127 like a shell)
            os.write(2, f"sandbox: cannot start the program: {err}\n".encode())
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    ending = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
    os.write(report_fd, (json.dumps(ending) + "\n").encode())


def main():
    cfg = json.loads(sys.argv[1])
    report_fd = cfg["report_fd"]
    as_root = os.geteuid() == 0
    flags = enter_namespaces(as_root)
    isolation = {
        "network_isolated": bool(flags & CLONE_NEWNET),
        "pid_isolated": bool(flags & CLONE_NEWPID),
        "filesystem_isolated": False,
        "separate_uid": cfg["run_as_uid"] is not None,
    }
    if flags & CLONE_NEWNS:
        try:
            isolation["filesystem_isolated"] = confine_writes(cfg["workdir"])
        except OSError as err:
            isolation["filesystem_error"] = str(err)
    os.write(report_fd, (json.dumps(isolation) + "\n").encode())
    pid = os.fork()
    if pid == 0:
        try:
            init_process(cfg, flags, report_fd)
        finally:
            os._exit(0)
    # the parent kills this process on a timeout; with a PID namespace the kernel then kills
    # every process in it before this wait returns
    os.write(report_fd, (json.dumps({"init_pid": pid}) + "\n").encode())
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
