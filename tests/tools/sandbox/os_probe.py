"""Test helper, run as a script: the kernel layers on their own, with the language layer off.

Sets up exactly what a template sets up (namespaces, the confinement, the layer probe), then
forks a child that applies the confinement the way every run's child does and tries, in plain
Python, everything a run must not be able to do. Prints one JSON object: the layers, and for
each attempt ``"blocked: <error>"`` or ``"ALLOWED"``. Never imported by the service.

Usage: ``python tests/tools/sandbox/os_probe.py CONFIG_JSON`` from the project root.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import mmap
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.getcwd())

from tools.sandbox import confine, libc
from tools.sandbox.child import program_waiting

try:
    import pyseccomp
except (ImportError, OSError):  # pragma: no cover - the project depends on it
    pyseccomp = None

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long  # an address, from mmap


def syscall(name: str, *args: int) -> int:
    """A system call by name (numbers differ between architectures), failing on -1."""
    if pyseccomp is None:
        raise OSError(errno.ENOSYS, "no libseccomp to resolve the number")
    number = pyseccomp.resolve_syscall(pyseccomp.system_arch(), name)
    got = _libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
    if got == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(got)


def raw(name: str, *args: int) -> Callable[[], None]:
    """The attempt of a system call, to run later."""

    def call() -> None:
        syscall(name, *args)

    return call


def _read(path: str) -> None:
    with open(path, "rb") as handle:
        handle.read(1)


def _write(path: str) -> None:
    with open(path, "w") as handle:
        handle.write("x")


def _fork() -> None:
    if os.fork() == 0:  # only if the layer failed: the child must not run the other probes
        os._exit(0)


_TIMESPEC = ctypes.create_string_buffer(16)
_TIMESPEC_AT = ctypes.addressof(_TIMESPEC)


def _cpu_clock(pid: int) -> int:
    """The clock id of another process's CPU time (the kernel's MAKE_PROCESS_CPUCLOCK)."""
    return ((~pid) << 3) | 2  # CPUCLOCK_SCHED


_RW = mmap.PROT_READ | mmap.PROT_WRITE
_PRIVATE_ANON = 0x02 | 0x20  # MAP_PRIVATE | MAP_ANONYMOUS


def own_memory() -> dict[str, str]:
    """What malloc and CPython do with memory, through the system calls themselves: each
    must work under the filter."""
    seen: dict[str, str] = {}
    size = 1 << 22
    calls: list[tuple[str, Callable[[], int]]] = []
    call = syscall
    try:
        addr = call("mmap", 0, size, _RW, _PRIVATE_ANON, -1, 0)
        calls.append(("madvise_dontneed", lambda: call("madvise", addr, size, 4)))
        calls.append(("madvise_free", lambda: call("madvise", addr, size, 8)))
        calls.append(("madvise_nohugepage", lambda: call("madvise", addr, size, 15)))
        calls.append(
            (
                "mmap_noreserve_stack",
                lambda: call("mmap", 0, size, _RW, _PRIVATE_ANON | 0x24000, -1, 0),
            )
        )
        calls.append(("mprotect_read", lambda: call("mprotect", addr, size, mmap.PROT_READ)))
        calls.append(("mremap_maymove", lambda: call("mremap", addr, size, 2 * size, 1)))
        calls.append(("futex_private_wake", lambda: call("futex", _TIMESPEC_AT, 1 | 128, 1)))
        calls.append(
            ("futex_wake_bitset", lambda: call("futex", _TIMESPEC_AT, 10 | 128, 1, 0, 0, -1))
        )
        seen["mmap_private"] = "ok"
    except OSError as exc:
        seen["mmap_private"] = f"blocked: {exc}"
    seen.update((name, _tried(attempt)) for name, attempt in calls)
    big = bytearray(64 << 20)  # malloc's own mmap, touched and given back
    big[::4096] = b"x" * len(big[::4096])
    del big
    seen["malloc_64_mib"] = "ok"
    return seen


def _tried(attempt: Callable[[], object]) -> str:
    """``ok``, or ``blocked: <error>`` when the attempt raised ``OSError``."""
    try:
        attempt()
    except OSError as exc:
        return f"blocked: {exc}"
    return "ok"


def own_clocks() -> dict[str, str]:
    """The clocks a run may read, through the system call itself (the vDSO answers most
    without one): each must work under the filter."""
    seen = {f"clock_gettime({c})": _tried(raw("clock_gettime", c, _TIMESPEC_AT)) for c in range(8)}
    for name in ("time", "monotonic", "perf_counter", "process_time", "thread_time"):
        seen[name] = _tried(getattr(time, name))
    return seen


def probes(
    config: dict[str, Any], own_pipe: int, parent: int, sibling: int
) -> dict[str, Callable[[], Any]]:
    """``parent``: the template's pid (1 in its namespace), asked before the filter, which
    refuses getppid (asked under it, the probes aimed at pid -1); ``sibling``: another child
    of it, confined as a run (the spare that will serve the next client)."""
    return {
        "read_passwd": lambda: _read("/etc/passwd"),
        "read_python_binary": lambda: _read(sys.executable),
        "read_proc_environ": lambda: _read(f"/proc/{parent}/environ"),
        "stat_path": lambda: os.stat("/etc"),
        "list_root": lambda: os.listdir("/"),
        "readlink": lambda: os.readlink("/proc/self/exe"),
        "getcwd": os.getcwd,
        "write_tmp": lambda: _write(config["probe_write_path"]),
        "chmod": lambda: os.chmod(config["probe_chmod_path"], 0o777),
        "socket_inet": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        "socket_unix": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
        "socketpair": socket.socketpair,
        "fork": _fork,
        "exec": lambda: os.execv("/bin/true", ["true"]),
        "thread": lambda: threading.Thread(target=lambda: None).start(),
        "kill_parent": lambda: os.kill(parent, 0),
        "kill_service_pgid": lambda: os.kill(-os.getpgid(0), 0),
        "tgkill_parent": raw("tgkill", parent, parent, 0),
        "pidfd_open_parent": raw("pidfd_open", parent, 0),
        "fcntl_setown": lambda: fcntl.fcntl(own_pipe, fcntl.F_SETOWN, parent),
        "fcntl_setsig": lambda: fcntl.fcntl(own_pipe, 10, signal.SIGKILL),  # F_SETSIG
        "fcntl_async": lambda: fcntl.fcntl(own_pipe, fcntl.F_SETFL, os.O_ASYNC),
        "setpriority_parent": lambda: os.setpriority(os.PRIO_PROCESS, parent, 19),
        "sched_setscheduler_parent": lambda: os.sched_setscheduler(
            parent, os.SCHED_IDLE, os.sched_param(0)
        ),
        "sched_setaffinity_parent": lambda: os.sched_setaffinity(parent, {0}),
        "sched_setattr_parent": raw("sched_setattr", parent, 0, 0),
        "ioprio_set_parent": raw("ioprio_set", 1, parent, (3 << 13)),
        # what only the same uid needs, aimed at the next client's spare (pass DX)
        "prlimit_sibling": lambda: resource.prlimit(sibling, resource.RLIMIT_AS, (1 << 24,) * 2),
        "setpriority_sibling": lambda: os.setpriority(os.PRIO_PROCESS, sibling, 19),
        "sched_setaffinity_sibling": lambda: os.sched_setaffinity(sibling, {0}),
        "ioprio_set_sibling": raw("ioprio_set", 1, sibling, (3 << 13)),
        "raise_rlimit_as": lambda: resource.setrlimit(
            resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        ),
        "shmget": raw("shmget", 0, 4096, 0o1600),
        "msgget": raw("msgget", 0, 0o1600),
        "semget": raw("semget", 0, 1, 0o1600),
        "memfd_create": lambda: os.memfd_create("x"),
        "pipe": os.pipe,
        "dup": lambda: os.dup(own_pipe),
        "eventfd": lambda: os.eventfd(0),
        "userfaultfd": raw("userfaultfd", 0),
        "io_uring_setup": raw("io_uring_setup", 1, 0),
        "bpf": raw("bpf", 0, 0, 0),
        "perf_event_open": raw("perf_event_open", 0, 0, -1, -1, 0),
        "ptrace_parent": raw("ptrace", 16, parent, 0, 0),  # PTRACE_ATTACH
        "process_vm_readv": raw("process_vm_readv", parent, 0, 0, 0, 0, 0),
        "keyctl": raw("keyctl", 0, 0),
        "unshare_user": raw("unshare", libc.CLONE_NEWUSER),
        "setns": raw("setns", 0, 0),
        "mount": raw("mount", 0, 0, 0, 0, 0),
        "chroot": lambda: os.chroot("/"),
        "personality": raw("personality", 0x0040000),  # ADDR_NO_RANDOMIZE
        "prctl_set_name": lambda: libc.prctl(15, 0),  # PR_SET_NAME
        "mmap_exec": lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC),
        "setuid_root": lambda: os.setuid(0),
        "uname": os.uname,
        # another process's CPU time, to the nanosecond, with no permission check (pass CW)
        "clock_gettime_parent_cpu": raw("clock_gettime", _cpu_clock(parent), _TIMESPEC_AT),
        "clock_getres_parent_cpu": raw("clock_getres", _cpu_clock(parent), 0),
        "clock_gettime_fd_clock": raw("clock_gettime", ((~own_pipe) << 3) | 3, _TIMESPEC_AT),
        "clock_gettime_high_bits": raw("clock_gettime", (1 << 32) | 1, _TIMESPEC_AT),
        # memory where the run chooses, shared, or from the huge-page pool (pass CW)
        "mmap_at_hint": raw("mmap", 1 << 40, 4096, _RW, _PRIVATE_ANON, -1, 0),
        "mmap_fixed_noreplace": raw("mmap", 1 << 40, 4096, _RW, _PRIVATE_ANON | 0x100000, -1, 0),
        "mmap_fixed": raw("mmap", 0, 4096, _RW, _PRIVATE_ANON | 0x10, -1, 0),
        "mmap_shared": raw("mmap", 0, 4096, _RW, 0x01 | 0x20, -1, 0),
        "mmap_hugetlb": raw("mmap", 0, 1 << 21, _RW, _PRIVATE_ANON | 0x40000, -1, 0),
        "mremap_fixed": raw("mremap", 0, 4096, 4096, 0x1 | 0x2, 1 << 40),
        "mmap_populate": raw("mmap", 0, 4096, _RW, _PRIVATE_ANON | 0x8000, -1, 0),
        "mmap_growsdown": raw("mmap", 0, 4096, _RW, _PRIVATE_ANON | 0x0100, -1, 0),
        "madvise_mergeable": raw("madvise", 0, 4096, 12),  # MADV_MERGEABLE (KSM)
        # transparent huge pages: compaction that moves other processes' pages (pass FK)
        "madvise_hugepage": raw("madvise", 0, 4096, 14),
        "madvise_willneed": raw("madvise", 0, 4096, 3),
        "madvise_pageout": raw("madvise", 0, 4096, 21),
        "futex_shared_wake": raw("futex", _TIMESPEC_AT, 1, 1, 0, 0, 0),  # FUTEX_WAKE, shared
        # FUTEX_TRYLOCK_PI, private: the word names an owner pid, alive or gone (pass CX)
        "futex_trylock_pi": raw("futex", _TIMESPEC_AT, 8 | 128, 0, 0, 0, 0),
        "futex_requeue": raw("futex", _TIMESPEC_AT, 3 | 128, 1, 0, _TIMESPEC_AT + 8, 0),
    }


def run_probes(config: dict[str, Any], keep: int, parent: int, sibling: int) -> dict[str, str]:
    results: dict[str, str] = {}
    for name, attempt in probes(config, keep, parent, sibling).items():
        try:
            attempt()
        except BaseException as exc:
            results[name] = f"blocked: {type(exc).__name__}: {exc}"
        else:
            results[name] = "ALLOWED"
    results["environ"] = json.dumps(sorted(os.environ))
    results["own_clocks"] = json.dumps(own_clocks())
    results["own_memory"] = json.dumps(own_memory())
    return results


def main() -> None:
    config = json.loads(sys.argv[1])
    out = os.dup(1)
    namespaces = confine.enter_namespaces(int(config["run_uid"]), (out, out))
    conf = confine.Confinement.build(config)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the probe of layers, as the template does it
        try:
            conf.isolate_descriptors((write_fd,))
            os.write(write_fd, json.dumps(conf.probe()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    layers = json.loads(os.read(read_fd, 65536))
    os.close(read_fd)
    os.waitpid(pid, 0)
    conf.require(layers)
    read_fd, write_fd = os.pipe()
    waiting_r, waiting_w = os.pipe()  # a program already in its pipe, and none yet
    empty_r, _empty_w = os.pipe()  # its write end held open: a closed one reads as EOF
    os.write(waiting_w, b"result = 1")
    sibling_r, sibling_w = os.pipe()
    sibling = os.fork()
    if sibling == 0:  # a spare: confined as the template's second live child, then waiting
        try:
            conf.isolate_descriptors((sibling_r,))
            conf.apply(1)
            os.read(sibling_r, 1)
        finally:
            os._exit(0)
    os.close(sibling_r)
    pid = os.fork()
    if pid == 0:  # a run's child: confined exactly as in template.py, then plain Python
        try:
            conf.isolate_descriptors((write_fd, waiting_r, empty_r))
            parent = os.getppid()
            conf.apply(0)
            # what serve_one_run asks before it warms up, under the filter (poll allowed)
            waiting = [program_waiting(waiting_r), program_waiting(empty_r)]
            results = run_probes(config, write_fd, parent, sibling)
            results["program_waiting"] = json.dumps(waiting)
            os.write(write_fd, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    os.close(sibling_w)
    os.waitpid(sibling, 0)
    report = json.loads(b"".join(chunks) or b"{}")
    report["layers"] = json.dumps({**layers, "namespaces": namespaces})
    os.write(out, json.dumps(report).encode() + b"\n")


if __name__ == "__main__":
    main()
