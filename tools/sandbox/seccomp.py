"""The seccomp filter of a run: an allow-list of the system calls a running program needs.

Everything not listed fails with ``EPERM``; calls of another architecture's ABI (``int 0x80``,
x32) kill the process (libseccomp's default for a foreign architecture). By the time the filter
is loaded the child has its request pipe, its reply pipe and ``/dev/null``, every module is
imported, and the program has not been read yet. From then on a program needs memory, reads,
writes (and a look at whether its program is in its pipe yet), the clock, randomness and an
exit, and nothing else:

* no files (``open``/``stat`` by path are not listed: the template pre-imports every module a
  program can reach, codecs included), no sockets, no new processes or threads, no exec;
* no signals at all, no scheduling, priority, affinity or I/O-priority changes, no rlimit
  changes, no ``ptrace``/``process_vm_*``, no namespaces, mounts, keys, BPF or io_uring;
* argument filters where a listed call has a dangerous mode: ``mmap``/``mprotect`` never with
  ``PROT_EXEC``; ``fcntl`` only ``F_GETFD``/``F_GETFL`` (never ``F_SETOWN``, ``F_SETSIG`` or
  ``O_ASYNC``, which make the kernel signal another process); ``prlimit64`` only to read;
  ``clock_gettime``/``clock_getres`` only the system-wide clocks and the process's own
  (a negative clock id reads another process's CPU time).

The filter is compiled once per template with libseccomp (``pyseccomp``) and exported as BPF;
a child loads it with a single ``prctl`` (see ``libc.SeccompProgram``).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import tempfile
from typing import Any

from tools.sandbox import libc

try:
    import pyseccomp
except (ImportError, OSError, RuntimeError):  # libseccomp missing: the layer is reported off
    pyseccomp = None

# Calls allowed whatever their arguments. Names unknown on this architecture are skipped.
ALLOWED = (
    # memory
    "brk",
    "munmap",
    "mremap",
    "madvise",
    # reading and writing the descriptors the child already holds, and closing them
    "read",
    "readv",
    "write",
    "writev",
    "close",
    # whether the program is already waiting in its pipe (a zero timeout: child.program_waiting)
    "poll",
    "ppoll",
    # the clock (usually the vDSO; the system call is the fallback; clock ids: see _rules) and
    # randomness
    "gettimeofday",
    "time",
    "getrandom",
    # the process itself
    "getpid",
    "gettid",
    "exit",
    "exit_group",
    "rt_sigreturn",
    "rt_sigprocmask",
    "sigaltstack",
    "futex",
    "sched_yield",
    "restart_syscall",
)
PROT_EXEC = mmap.PROT_EXEC
# CLOCK_REALTIME ... CLOCK_BOOTTIME (0-7): what time.time(), monotonic(), perf_counter(),
# process_time() and thread_time() ask for.
_OWN_CLOCK_IDS = 0b111
_U64 = (1 << 64) - 1


def _rules(flt: Any) -> None:
    allow = pyseccomp.ALLOW
    for name in ALLOWED:
        try:
            flt.add_rule(allow, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a system call on this architecture
    no_exec = pyseccomp.Arg(2, pyseccomp.MASKED_EQ, PROT_EXEC, 0)
    flt.add_rule(allow, "mmap", no_exec)
    flt.add_rule(allow, "mprotect", no_exec)
    # clock_gettime/clock_getres(clock_id, ...): the system-wide clocks and the run's own CPU
    # clocks, ids 0-7. A negative id names another process's CPU clock (its pid, encoded) or
    # a clock device's fd, and the kernel reads any process's CPU clock in the caller's PID
    # namespace without a permission check: the template's and every concurrent run's, to
    # the nanosecond (red-team pass CW). The id is an int; a 64-bit value with any other
    # bit set is refused too.
    own_clocks = pyseccomp.Arg(0, pyseccomp.MASKED_EQ, ~_OWN_CLOCK_IDS & _U64, 0)
    flt.add_rule(allow, "clock_gettime", own_clocks)
    flt.add_rule(allow, "clock_getres", own_clocks)
    for command in (fcntl.F_GETFD, fcntl.F_GETFL):
        flt.add_rule(allow, "fcntl", pyseccomp.Arg(1, pyseccomp.EQ, command))
    # prlimit64(pid, resource, new_limit, old_limit): reading only, and only its own limits.
    flt.add_rule(
        allow,
        "prlimit64",
        pyseccomp.Arg(0, pyseccomp.EQ, 0),
        pyseccomp.Arg(2, pyseccomp.EQ, 0),
    )


def compile_filter() -> libc.SeccompProgram | None:
    """The run filter as ready-to-load BPF; None when libseccomp is not available."""
    if pyseccomp is None:
        return None
    flt: Any = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
    _rules(flt)
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        bpf = out.read()
    return libc.SeccompProgram(bpf)


def describe() -> str:
    """The filter in libseccomp's readable form (for operators and the tests)."""
    if pyseccomp is None:
        return "libseccomp is not available"
    flt: Any = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
    _rules(flt)
    with tempfile.TemporaryFile() as out:
        flt.export_pfc(out)
        out.seek(0)
        return out.read().decode("ascii", "replace")
