"""The kernel's part of the sandbox: namespaces for the template, confinement for each child.

Built once by the template (:meth:`Confinement.build`), applied by every run's child between
its fork and the moment it reads its program (:meth:`Confinement.apply`), in this order:

1. **descriptors**: ``/dev/null`` on 0, 1 and 2; every other descriptor closed but the run's
   two pipes (the service's pipes, the other runs' pipes and the Landlock ruleset are gone);
2. **rlimits**: address space, CPU seconds (one run's worth), no core files, no file writes,
   no new processes, no locked memory, no message queues, few descriptors;
3. **identity**: an unprivileged uid and gid of its own (from ``RUN_UIDS`` ids starting at
   ``run_uid``, 65534 by default; no two live children of a template share one) when the
   template may switch to them (it runs as root, inside its user namespace or not); all
   capabilities dropped; not dumpable (no ``ptrace``, no ``/proc/<pid>/mem``);
4. ``no_new_privs``, then **Landlock** (``landlock.py``), then **seccomp** (``seccomp.py``).

The template probes the layers once, in a child that tries each one and reports what took
effect; from then on every child must apply exactly those, or it exits before reading its
program. Namespaces (:func:`enter_namespaces`) are the template's own, set up before it forks
anything: a child sees no process outside its template's PID namespace (the template and
its other children are in it: the seccomp filter keeps it from naming them, refusing every
call that takes a pid but its own, and the clock ids that read another process's CPU time),
no network interface (NET), no System V objects of anyone else (IPC), and in a user
namespace no capability on the host.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tools.sandbox import landlock, libc, seccomp

# Past it, descriptors are closed one by one only where the kernel has no close_range (the
# most a process may hold: /proc/sys/fs/nr_open, 1,048,576 unless raised).
NR_OPEN = 1 << 20
# The run's C stack: CPython 3.11 recurses in C for every call C makes (a special method, a
# repr, a sort's key), and at the deepest recursion limit a program may ask for (20,000
# frames) a sort whose key sorts again takes ~4.7 KB of C stack a frame (red-team pass CI:
# SIGSEGV past 64 MiB). Counted in the run's memory limit as it is used; the template is
# started with it, so that the kernel leaves the room (template._reexec_...).
STACK_BYTES = 256 << 20
# The uids (and gids) a template's children take, from ``run_uid`` on: each live child its
# own. ``prlimit``, ``setpriority``, ``sched_setaffinity`` and ``ioprio_set`` need only the
# same uid as their target, and Landlock scopes none of them: with seccomp off, a run that
# shared its uid with the spare waiting for the next client gave it a 24 MiB memory limit, and
# one that caught a spare before its own ``setrlimit`` ended the template (red-team pass DX).
# More than a template ever has alive: ``SANDBOX_WORKERS`` (at most 64) + 1 runs and its
# spares.
RUN_UIDS = 128


def stack_bytes() -> int:
    """``STACK_BYTES``, or the hard limit when that is lower."""
    _, hard = resource.getrlimit(resource.RLIMIT_STACK)
    return STACK_BYTES if hard == resource.RLIM_INFINITY else min(STACK_BYTES, hard)


# The layers a child may report; ``namespaces`` is the template's own and added by it.
CHILD_LAYERS = (
    "rlimits",
    "seccomp",
    "landlock",
    "landlock_network",
    "landlock_scopes",
    "uid",
    "capabilities",
)


def readable_paths() -> list[str]:
    """The directories Python itself needs to read from: its stdlib and site-packages."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    candidates = set(sys.path) | {
        sysconfig.get_paths().get(key, "") for key in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    paths: set[str] = set()
    for entry in candidates:
        real = os.path.realpath(entry) if entry else ""
        if (
            real
            and os.path.isdir(real)
            and any(real == p or real.startswith(p + os.sep) for p in prefixes)
        ):
            paths.add(real)
    return sorted(paths)


@dataclass
class Confinement:
    """What a child applies to itself; see the module docstring for the order."""

    memory_bytes: int
    cpu_s: int
    devnull: int
    ruleset: landlock.Ruleset | None
    program: libc.SeccompProgram | None
    run_uids: tuple[int, ...]  # a child switches to one of these uids/gids; none: it may not
    required: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def build(cls, config: dict[str, Any]) -> Confinement:
        ruleset = landlock.build_ruleset(readable_paths()) if config["landlock"] else None
        program = seccomp.compile_filter() if config["seccomp"] else None
        run_uid = int(config["run_uid"])
        mapped = _ids_mapped(run_uid, RUN_UIDS) if os.geteuid() == 0 and run_uid > 0 else 0
        return cls(
            memory_bytes=int(config["memory_mb"]) * 1024 * 1024,
            cpu_s=max(1, int(float(config["timeout_s"]) + 0.999)) + 1,
            devnull=os.open(os.devnull, os.O_RDWR),
            ruleset=ruleset,
            program=program,
            run_uids=tuple(range(run_uid, run_uid + mapped)),
        )

    # -- in the child --------------------------------------------------------------------

    def isolate_descriptors(self, keep: Iterable[int]) -> None:
        """``/dev/null`` on 0-2, and every descriptor closed but ``keep`` (and the Landlock
        ruleset, which :meth:`apply` closes once it is enforced)."""
        for fd in (0, 1, 2):
            os.dup2(self.devnull, fd)
        kept = set(keep)
        if self.ruleset is not None:
            kept.add(self.ruleset.fd)
        low = 3
        for fd in sorted(kept):
            if fd > low:
                os.closerange(low, fd)
            low = max(low, fd + 1)
        # every one past the kept ones, however high: closing below 65,536 only left the
        # template's control socket open in a run wherever the service held more
        # descriptors than that (red-team pass DX: a run wrote to it, the template dropped)
        try:
            libc.close_from(low)
        except OSError:  # a kernel before 5.9
            os.closerange(low, NR_OPEN)

    def _identity(self, slot: int) -> None:
        libc.prctl(libc.PR_SET_DUMPABLE, 0)
        if self.run_uids:
            uid = self.run_uids[slot % len(self.run_uids)]
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    def _rlimits(self) -> None:
        stack = stack_bytes()
        limits = (
            (resource.RLIMIT_STACK, stack, stack),
            (resource.RLIMIT_AS, self.memory_bytes, self.memory_bytes),
            (resource.RLIMIT_CPU, self.cpu_s, self.cpu_s + 1),
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_FSIZE, 0, 0),
            (resource.RLIMIT_NOFILE, 16, 16),
            (resource.RLIMIT_NPROC, 0, 0),
            (resource.RLIMIT_MEMLOCK, 0, 0),
            (resource.RLIMIT_MSGQUEUE, 0, 0),
        )
        for which, soft, hard in limits:
            resource.setrlimit(which, (soft, hard))

    def _capabilities(self) -> None:
        libc.drop_capabilities()
        if libc.capabilities_permitted():
            raise OSError("capabilities remain after dropping them")

    def _landlock(self) -> None:
        if self.ruleset is None:
            raise OSError("Landlock is not available")
        landlock.restrict_self(self.ruleset)
        os.close(self.ruleset.fd)

    def _seccomp(self) -> None:
        if self.program is None:
            raise OSError("seccomp (libseccomp) is not available")
        self.program.load()

    def apply(self, slot: int = 0) -> None:
        """Apply every required layer, in order; raises if one fails (the child then exits).
        ``slot``: the child's number among its template's live children, which picks its uid.
        The rlimits come first, while the child still has the template's uid: no other run
        can reach it before they hold."""
        req = self.required
        self._rlimits()
        if req.get("uid"):
            self._identity(slot)
        else:
            libc.prctl(libc.PR_SET_DUMPABLE, 0)
        self._capabilities()
        libc.no_new_privs()
        if req.get("landlock"):
            self._landlock()
        elif self.ruleset is not None:
            os.close(self.ruleset.fd)
        if req.get("seccomp"):
            self._seccomp()

    def probe(self) -> dict[str, bool]:
        """Try every layer, in the order :meth:`apply` uses; report which took effect."""
        layers = dict.fromkeys(CHILD_LAYERS, False)
        layers["rlimits"] = _attempt(self._rlimits)
        if self.run_uids:
            layers["uid"] = _attempt(lambda: self._identity(0))
        layers["capabilities"] = _attempt(self._capabilities)
        nnp = _attempt(libc.no_new_privs)
        if nnp and self.ruleset is not None and _attempt(self._landlock):
            layers["landlock"] = True
            layers["landlock_network"] = self.ruleset.network
            layers["landlock_scopes"] = self.ruleset.scoped
        if nnp:
            layers["seccomp"] = _attempt(self._seccomp) and _seccomp_holds()
        return layers

    def require(self, layers: dict[str, bool]) -> None:
        self.required = {name: layers.get(name, False) for name in CHILD_LAYERS}


def _attempt(step: Any) -> bool:
    try:
        step()
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def _seccomp_holds() -> bool:
    """The filter refuses what it must: opening a file is one of the first things it denies."""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except PermissionError:
        return True
    return False


def _ids_mapped(first: int, wanted: int) -> int:
    """How many ids from ``first`` on (at most ``wanted``) exist in this process's user
    namespace as uids and as gids, one after another (all of them outside one)."""
    return min(_mapped(f"/proc/self/{kind}_map", first, wanted) for kind in ("uid", "gid"))


def _mapped(path: str, first: int, wanted: int) -> int:
    try:
        with open(path, encoding="ascii") as id_map:
            ranges = [tuple(int(x) for x in line.split()) for line in id_map]
    except (OSError, ValueError):
        return 0
    for inside, _outside, count in ranges:
        if inside <= first < inside + count:
            return min(wanted, inside + count - first)
    return 0


def first_to_go_when_memory_runs_out() -> bool:
    """Make this process (the template) and every child it forks the kernel's first choice
    when the host runs out of memory (``oom_score_adj`` 1000, inherited across ``fork``;
    raising one's own needs no privilege, and a run cannot lower it: no file opens).
    RLIMIT_AS does not count a process's page tables: a run that spread pages over its
    address space held 2.8 times its memory limit, and two of them made the kernel kill
    the service, the biggest process, rather than a run (red-team pass CW). False where
    ``/proc`` cannot be written."""
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as adj:
            adj.write("1000")
    except OSError:
        return False
    return True


class PidScatter:
    """Where the next child's pid lands in the template's PID namespace: a random place.

    Every child of a template shares its PID namespace, where pids count up one a fork: a
    run out of the language layer read its own pid, ran again later, and knew how many runs
    of other owners its template had served between the two (red-team pass GN, the same
    count pass EW took out of the template's records). Before each fork the template writes
    a random number to ``ns_last_pid``, which it may as root of its own user namespace, and
    the kernel gives the next process the first free pid after it. Only the template's own
    namespace is ever touched: :meth:`open` is called in it, and not at all without one.
    """

    PATH = "/proc/sys/kernel/ns_last_pid"

    def __init__(self, fd: int | None, top: int) -> None:
        self.fd = fd
        self.top = top  # the kernel's pid_max: pids are below it

    @classmethod
    def open(cls, in_namespaces: bool) -> PidScatter:
        """Ready in the template's own namespaces; a no-op outside them or where refused."""
        if not in_namespaces:
            return cls(None, 0)
        try:
            with open("/proc/sys/kernel/pid_max", encoding="ascii") as handle:
                top = int(handle.read())
            fd = os.open(cls.PATH, os.O_WRONLY | os.O_CLOEXEC)
        except (OSError, ValueError):
            return cls(None, 0)
        scatter = cls(fd, top)
        if not scatter.scatter():  # refused (no capability there): pids count up, as before
            os.close(fd)
            return cls(None, 0)
        return scatter

    def scatter(self) -> bool:
        """Move the next pid to a random place; whether the kernel took it."""
        if self.fd is None or self.top < 64:
            return False
        last = 2 + int.from_bytes(os.urandom(4), "little") % (self.top - 4)
        try:
            os.pwrite(self.fd, str(last).encode("ascii"), 0)
        except OSError:
            return False
        return True


def enter_namespaces(run_uid: int, protocol_fds: tuple[int, ...]) -> bool:
    """Move the template into new user, PID, network, IPC and UTS namespaces.

    The calling process stays outside as the *keeper*: it forks a middle process that unshares
    the namespaces, writes that process's id maps from outside (only a process in the parent
    namespace may map more than its own id, which a root service needs for the runs' uid),
    and waits. The middle process forks the template, PID 1 of the new PID namespace, and
    waits too. Each level dies with the one above it (``PR_SET_PDEATHSIG``), and every run
    dies with PID 1, so killing the keeper ends everything.

    Returns True in the template. Returns False, in the caller's own process and without
    namespaces, when the kernel or the container refuses them. Raises ``OSError`` when the
    namespaces exist but their id maps are refused.
    """
    uid, gid = os.geteuid(), os.getegid()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(ready_r)
        os.close(go_w)
        _become_middle(ready_w, go_r, protocol_fds)
        return True  # only the template gets here
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            os.waitpid(middle, 0)
            return False
        maps, gid_maps = [f"0 {uid} 1"], [f"0 {gid} 1"]
        # root may map more ids: the runs' own, as many as its own namespace has (a
        # container's user namespace may end at 65,535: pass EE)
        count = _ids_mapped(run_uid, RUN_UIDS) if uid == 0 and run_uid > 0 else 0
        if count:
            maps.append(f"{run_uid} {run_uid} {count}")
            gid_maps.append(f"{run_uid} {run_uid} {count}")
        try:
            if uid != 0:
                _write(f"/proc/{middle}/setgroups", "deny")
            _write(f"/proc/{middle}/uid_map", "\n".join(maps))
            _write(f"/proc/{middle}/gid_map", "\n".join(gid_maps))
        except OSError as exc:
            os.write(go_w, b"0")
            os.waitpid(middle, 0)
            raise OSError(f"the sandbox's user namespace could not be mapped: {exc}") from None
        os.write(go_w, b"1")
    finally:
        os.close(ready_r)
        os.close(go_w)
    _keep_and_wait(middle, protocol_fds)


def _become_middle(ready_w: int, go_r: int, protocol_fds: tuple[int, ...]) -> None:
    """The middle process: unshare, wait for the id maps, fork the template (which returns)."""
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    flags = libc.CLONE_NEWUSER | libc.CLONE_NEWPID | libc.CLONE_NEWNET
    flags |= libc.CLONE_NEWIPC | libc.CLONE_NEWUTS
    try:
        libc.unshare(flags)
    except OSError:
        os.write(ready_w, b"0")
        os._exit(0)
    os.write(ready_w, b"1")
    if os.read(go_r, 1) != b"1":
        os._exit(1)
    os.close(ready_w)
    os.close(go_r)
    template = os.fork()
    if template == 0:
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        close_namespace_doors()
        return
    _keep_and_wait(template, protocol_fds)


# Per-namespace limits the template sets to zero in its own user and IPC namespaces (it is
# root there): no namespace, inotify or fanotify instance can be made in them, nor a System V
# or POSIX IPC object. seccomp refuses those calls already; with seccomp bypassed or off, a run
# made a user namespace and left a System V segment the next run of its template read (red-team
# pass CW): no layer is trusted alone.
_ZEROED = {
    **{
        f"/proc/sys/user/max_{kind}": "0"
        for kind in (
            "user_namespaces",
            "mnt_namespaces",
            "net_namespaces",
            "pid_namespaces",
            "ipc_namespaces",
            "uts_namespaces",
            "cgroup_namespaces",
            "time_namespaces",
            "inotify_instances",
            "fanotify_groups",
        )
    },
    "/proc/sys/kernel/shmmni": "0",
    "/proc/sys/kernel/msgmni": "0",
    "/proc/sys/kernel/sem": "0 0 0 0",
    "/proc/sys/fs/mqueue/queues_max": "0",
}


def close_namespace_doors() -> list[str]:
    """Zero ``_ZEROED`` in the template's namespaces (best effort: a kernel without one of
    them leaves it as it was); the paths it could not write."""
    missed = []
    for path, value in _ZEROED.items():
        try:
            _write(path, value)
        except OSError:
            missed.append(path)
    return missed


def _keep_and_wait(pid: int, protocol_fds: tuple[int, ...]) -> NoReturn:
    for fd in protocol_fds:  # only the template talks to the service
        with contextlib.suppress(OSError):
            os.close(fd)
    _, raw = os.waitpid(pid, 0)
    status = os.waitstatus_to_exitcode(raw)
    os._exit(status if status >= 0 else 128 - status)


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)
