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
  ``PROT_EXEC``; ``mmap`` and ``mremap`` only where the kernel chooses, private and without
  huge pages; ``madvise`` only malloc's advice; ``futex`` only private waits and wakes;
  ``fcntl`` only ``F_GETFD``/``F_GETFL`` (never ``F_SETOWN``, ``F_SETSIG`` or ``O_ASYNC``,
  which make the kernel signal another process); ``prlimit64`` only to read;
  ``clock_gettime`` and ``clock_getres`` only the system-wide clocks and the process's own
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
    # memory (mmap, mremap, mprotect and madvise: argument filters, see _rules)
    "brk",
    "munmap",
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
    "sched_yield",
    "restart_syscall",
)
PROT_EXEC = mmap.PROT_EXEC
# CLOCK_REALTIME ... CLOCK_BOOTTIME (0-7): what time.time(), monotonic(), perf_counter(),
# process_time() and thread_time() ask for.
_OWN_CLOCK_IDS = 0b111
_U64 = (1 << 64) - 1
# mmap flags a run may use, and no other: MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE,
# MAP_STACK (what malloc, CPython's arenas and thread stacks ask; values of linux/mman.h,
# the same on x86-64 and arm64). A deny-list of MAP_SHARED, MAP_FIXED, MAP_HUGETLB and
# MAP_FIXED_NOREPLACE let MAP_POPULATE and MAP_GROWSDOWN through (pass FK). Only the low 32
# bits are looked at: the flags are a C int.
_MAP_ALLOWED = 0x02 | 0x20 | 0x4000 | 0x20000
_MAP_REFUSED = 0xFFFFFFFF & ~_MAP_ALLOWED
_MREMAP_REFUSED = 0x2 | 0x4  # MREMAP_FIXED, MREMAP_DONTUNMAP
# MADV_NORMAL, RANDOM, SEQUENTIAL, DONTNEED, FREE, NOHUGEPAGE: what malloc asks. Not
# MADV_HUGEPAGE, whose faults may compact memory synchronously, moving other processes'
# pages, where transparent huge pages are in "madvise" mode (pass FK), nor WILLNEED.
_MADVISE_ALLOWED = (0, 1, 2, 4, 8, 15)
_FUTEX_PRIVATE = 128  # FUTEX_PRIVATE_FLAG
_FUTEX_REALTIME = 256  # FUTEX_CLOCK_REALTIME
# FUTEX_WAIT, WAKE, WAIT_BITSET (monotonic or realtime deadline), WAKE_BITSET: private only
_FUTEX_OPS = tuple(op | _FUTEX_PRIVATE for op in (0, 1, 9, 9 | _FUTEX_REALTIME, 10))


def _rules(flt: Any) -> None:
    allow = pyseccomp.ALLOW
    for name in ALLOWED:
        try:
            flt.add_rule(allow, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a system call on this architecture
    no_exec = pyseccomp.Arg(2, pyseccomp.MASKED_EQ, PROT_EXEC, 0)
    # mmap(addr, length, prot, flags, fd, offset): where the kernel chooses, private, never
    # executable, with the flags of _MAP_ALLOWED only. At an address of the run's choosing
    # (a hint or MAP_FIXED*), a page alone in each GiB of address space cost two page-table
    # pages that RLIMIT_AS does not count: a run held 2.8 times its memory limit (pass CW).
    flt.add_rule(
        allow,
        "mmap",
        pyseccomp.Arg(0, pyseccomp.EQ, 0),
        no_exec,
        pyseccomp.Arg(3, pyseccomp.MASKED_EQ, _MAP_REFUSED, 0),
    )
    flt.add_rule(allow, "mprotect", no_exec)
    # mremap(old, old_size, new_size, flags, new_addr): grown or moved where the kernel chooses
    flt.add_rule(allow, "mremap", pyseccomp.Arg(3, pyseccomp.MASKED_EQ, _MREMAP_REFUSED, 0))
    # madvise(addr, length, advice): what malloc asks, nothing that shares, merges or pages
    # out (MADV_MERGEABLE is KSM's page deduplication, a side channel where KSM runs)
    for advice in _MADVISE_ALLOWED:
        flt.add_rule(allow, "madvise", pyseccomp.Arg(2, pyseccomp.EQ, advice))
    # futex(addr, op, ...): glibc's private waits and wakes, nothing else. A shared futex on
    # a file mapping is keyed by the file, so every process mapping glibc's iconv cache had
    # the same one: runs of any template woke each other (pass CW); the PI operations read
    # an owner's pid from the futex word and told a live process from a gone one (pass CX).
    for op in _FUTEX_OPS:
        flt.add_rule(allow, "futex", pyseccomp.Arg(1, pyseccomp.EQ, op))
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
