"""The kernel layers on their own: plain Python (language layer bypassed) in a confined child.

``os_probe.py`` sets up what a template sets up and runs, in a child confined exactly like a
run's, a list of things a run must never do: files, sockets, processes, signals and
scheduling changes aimed at its parent, rlimits, System V IPC, new descriptors, kernel
interfaces, executable memory. Each must be refused by the kernel, not by Python.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tools.sandbox import SandboxConfig, confine
from tools.sandbox.confine import readable_paths
from tools.sandbox.pool import TEMPLATE_ENV
from tools.sandbox.seccomp import ALLOWED, describe

ROOT = Path(__file__).resolve().parents[3]
PROBE = Path(__file__).with_name("os_probe.py")
ATTEMPTS = [
    "read_passwd",
    "read_python_binary",
    "read_proc_environ",
    "stat_path",
    "list_root",
    "readlink",
    "getcwd",
    "write_tmp",
    "chmod",
    "socket_inet",
    "socket_unix",
    "socketpair",
    "fork",
    "exec",
    "thread",
    "kill_parent",
    "kill_service_pgid",
    "tgkill_parent",
    "pidfd_open_parent",
    "fcntl_setown",
    "fcntl_setsig",
    "fcntl_async",
    "setpriority_parent",
    "sched_setscheduler_parent",
    "sched_setaffinity_parent",
    "sched_setattr_parent",
    "ioprio_set_parent",
    "prlimit_sibling",
    "setpriority_sibling",
    "sched_setaffinity_sibling",
    "ioprio_set_sibling",
    "raise_rlimit_as",
    "shmget",
    "msgget",
    "semget",
    "memfd_create",
    "pipe",
    "dup",
    "eventfd",
    "userfaultfd",
    "io_uring_setup",
    "bpf",
    "perf_event_open",
    "ptrace_parent",
    "process_vm_readv",
    "keyctl",
    "unshare_user",
    "setns",
    "mount",
    "chroot",
    "personality",
    "prctl_set_name",
    "mmap_exec",
    "setuid_root",
    "uname",
    "clock_gettime_parent_cpu",
    "clock_getres_parent_cpu",
    "clock_gettime_fd_clock",
    "clock_gettime_high_bits",
    "mmap_at_hint",
    "mmap_fixed_noreplace",
    "mmap_fixed",
    "mmap_shared",
    "mmap_hugetlb",
    "mremap_fixed",
    "mmap_populate",
    "mmap_growsdown",
    "madvise_mergeable",
    "madvise_hugepage",
    "madvise_willneed",
    "madvise_pageout",
    "futex_shared_wake",
    "futex_trylock_pi",
    "futex_requeue",
]


def run_script(script: Path, *args: str, timeout: float) -> Any:
    """A helper script's JSON answer, run as a template runs (``TEMPLATE_ENV``, the root)."""
    out = subprocess.run(
        [sys.executable, "-s", "-P", str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=TEMPLATE_ENV,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def run_probe(tmp: Path, **overrides: Any) -> dict[str, str]:
    target = tmp / "chmod-me"
    target.write_text("canary")
    target.chmod(0o600)
    config = {
        **dataclasses.asdict(SandboxConfig()),
        **overrides,
        "probe_write_path": str(tmp / "written"),
        "probe_chmod_path": str(target),
    }
    results: dict[str, str] = run_script(PROBE, json.dumps(config), timeout=120)
    assert not (tmp / "written").exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    return results


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return run_probe(tmp_path_factory.mktemp("probe"))


# What the template's namespaces refuse on their own, with seccomp off (bypassed, or a
# deployment with SANDBOX_ALLOW_WEAK and no libseccomp): red-team pass CW made a user
# namespace and left a System V segment that the next run of its template read.
WITHOUT_SECCOMP = ["shmget", "msgget", "semget", "unshare_user"]


@pytest.mark.parametrize("attempt", WITHOUT_SECCOMP)
def test_the_namespaces_refuse_ipc_and_new_namespaces_without_seccomp(
    weak_probe: dict[str, str], attempt: str
) -> None:
    assert weak_probe[attempt].startswith("blocked: "), weak_probe[attempt]
    # the namespace's limit of zero: ENOSPC (semget with one semaphore: more than SEMMSL)
    limits = ("No space left on device", "Invalid argument")
    assert any(word in weak_probe[attempt] for word in limits), weak_probe[attempt]


# What only the same uid needs, aimed at another child of the template (the spare that will
# serve the next client): with seccomp off, the children's own uids refuse it (pass DX: a run
# gave the next client's spare a 24 MiB memory limit).
SIBLING = [
    "prlimit_sibling",
    "setpriority_sibling",
    "sched_setaffinity_sibling",
    "ioprio_set_sibling",
]


@pytest.mark.parametrize("attempt", SIBLING)
def test_another_runs_process_is_out_of_reach_without_seccomp(
    weak_probe: dict[str, str], attempt: str
) -> None:
    assert weak_probe[attempt].startswith("blocked: "), weak_probe[attempt]
    assert "Operation not permitted" in weak_probe[attempt], weak_probe[attempt]


@pytest.fixture(scope="module")
def weak_probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    results = run_probe(tmp_path_factory.mktemp("weak"), seccomp=False, allow_weak=True)
    assert json.loads(results["layers"])["seccomp"] is False
    return results


def test_every_layer_is_active_here(probe: dict[str, str]) -> None:
    # This machine (Linux 6.x, Landlock ABI 7, user namespaces, root) has them all.
    layers = json.loads(probe["layers"])
    assert layers == {
        "rlimits": True,
        "seccomp": True,
        "landlock": True,
        "landlock_network": True,
        "landlock_scopes": True,
        "uid": True,
        "capabilities": True,
        "namespaces": True,
    }


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_forbidden_operation_is_refused_by_the_kernel(probe: dict[str, str], attempt: str) -> None:
    assert probe[attempt].startswith("blocked: "), probe[attempt]
    # The kernel's refusal (EPERM/EACCES), surfacing as PermissionError or OSError; a refused
    # clone makes a thread start fail with RuntimeError; setrlimit maps EPERM to ValueError.
    refusals = ("Operation not permitted", "Permission denied", "PermissionError")
    refusals += ("can't start new thread", "not allowed to raise maximum limit")
    assert any(word in probe[attempt] for word in refusals), probe[attempt]


def test_a_child_under_the_filter_can_tell_whether_its_program_is_waiting(
    probe: dict[str, str],
) -> None:
    """A child whose program is already in its pipe skips the warm-up (under load it costs
    ~3 ms of CPU a run); under the filter, asking must work, not fail into a warm-up."""
    assert json.loads(probe["program_waiting"]) == [True, False]


def test_a_run_reads_its_own_clocks_under_the_filter(probe: dict[str, str]) -> None:
    clocks = json.loads(probe["own_clocks"])
    assert clocks and set(clocks.values()) == {"ok"}, clocks


def test_a_run_uses_memory_as_malloc_does_under_the_filter(probe: dict[str, str]) -> None:
    memory = json.loads(probe["own_memory"])
    assert len(memory) == 10 and set(memory.values()) == {"ok"}, memory


def test_environment_is_empty(probe: dict[str, str]) -> None:
    assert set(json.loads(probe["environ"])) <= {*TEMPLATE_ENV, "LC_CTYPE"}


def test_a_child_keeps_no_descriptor_however_high(monkeypatch: pytest.MonkeyPatch) -> None:
    """Descriptors were closed below 65,536 only: past it, where a service holds that many,
    a run kept the template's control socket and wrote to it (red-team pass DX). Here a
    descriptor as high as this process may hold, with the old bound lowered below it."""
    monkeypatch.setattr(confine, "MAX_FD", 64, raising=False)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    high = min(hard, 1 << 20) - 1
    devnull = os.open(os.devnull, os.O_RDWR)
    confinement = confine.Confinement(1 << 30, 5, devnull, None, None, None)
    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            os.dup2(devnull, high)
            confinement.isolate_descriptors((reply_w,))
            try:
                os.fstat(high)
                os.write(reply_w, b"open")
            except OSError:
                os.write(reply_w, b"closed")
            status = 0
        finally:
            os._exit(status)
    os.close(reply_w)
    answer = os.read(reply_r, 16)
    os.close(reply_r)
    os.close(devnull)
    os.waitpid(pid, 0)
    assert high > 64 and answer == b"closed"


def test_a_runs_child_holds_no_record_of_another_run() -> None:
    """A child is forked by the template's serving loop and inherits its stack and heap: a
    run out of the language layer read, through them, another owner's run in progress (its
    pid, slot and deadline: when it started and its time limit), the run that had just
    ended and how many came before (red-team pass EW). The script plays the service
    against the real serving loop: one run left running, one ended, and the replacement
    forked for it asked what it holds."""
    report = run_script(PROBE.with_name("template_leftovers.py"), timeout=60)
    step = report.pop("pid_step")
    assert report == {
        "records": [],
        "on_stack": [],
        "template": [{"children": [], "next_id": 0}],
    }
    # nor its pid: the template's children share its PID namespace, where pids counted up
    # one a fork, and a run out of the language layer that read its own pid twice knew how
    # many runs had come between (red-team pass GN). The next pid is put at a random place
    # (1 in 4 million that it lands right after the last one).
    assert step != 1, step


def test_the_filter_is_an_allow_list() -> None:
    text = describe()
    assert "# default action\n  action ERRNO(1);" in text  # whatever is not listed: EPERM
    filtered = set(re.findall(r'# filter for syscall "(\w+)"', text))
    assert filtered, text[:500]
    argument_filtered = {"mmap", "mprotect", "mremap", "madvise", "futex", "fcntl", "prlimit64"}
    argument_filtered |= {"clock_gettime", "clock_getres"}
    assert filtered <= {*ALLOWED, *argument_filtered}, filtered
    dangerous = {"socket", "openat", "open", "execve", "clone", "kill", "ptrace", "ioctl"}
    assert not filtered & (dangerous | {"sched_setattr", "setpriority", "ioprio_set"})


def test_readable_paths_are_only_the_python_installation() -> None:
    paths = readable_paths()
    assert paths
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    assert all(any(p == q or p.startswith(q + os.sep) for q in prefixes) for p in paths)
    assert str(ROOT) not in paths and "/etc" not in paths
