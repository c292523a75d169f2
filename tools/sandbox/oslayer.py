"""The OS layer a worker applies to itself before it runs any program.

Applied once per worker, after the allowed modules are imported and before the first program:

* **rlimits**: address space (``memory_mb``), CPU seconds, no core files, no file writes
  (``RLIMIT_FSIZE`` 0), few file descriptors, no new processes (``RLIMIT_NPROC`` 0, which
  only binds non-root users; seccomp covers root).
* **Landlock** (``landlock``): the process may read only the Python installation it runs
  from (the stdlib, ``lib-dynload`` and the ``site-packages`` in use, for codecs that load
  lazily) and write nothing anywhere; ``/etc``, ``/proc``, ``/home``, the project and the
  service's data are out of reach.
* **seccomp** (``pyseccomp``): ``EPERM`` for creating sockets, creating processes (fork,
  vfork, clone, clone3: workers are single-threaded), exec, signalling other processes,
  raising rlimits, tracing or reading other processes' memory, changing file modes and owners
  (which Landlock does not cover), and kernel-level administration calls.

Support is detected, never assumed: each step reports whether it took effect, and the worker
sends that to the service, which logs it and exposes it as ``Sandbox.layers``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import sys
import sysconfig
from typing import Any

# Imported now: pyseccomp locates libseccomp with ctypes.util.find_library, which runs
# ldconfig in a subprocess; after the OS layer is applied neither the exec nor the read works.
try:
    import pyseccomp
except (ImportError, OSError, RuntimeError):  # libseccomp missing: the layer is reported off
    pyseccomp = None
try:
    import landlock
except ImportError:
    landlock = None

# Every syscall refused with EPERM. Unknown names (other architectures, old libseccomp) are
# skipped one by one.
DENIED_SYSCALLS = (
    # network
    "socket",
    "socketpair",
    # processes and programs
    "fork",
    "vfork",
    "clone",
    "clone3",
    "execve",
    "execveat",
    # other processes
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "process_madvise",
    # limits and identity
    "setrlimit",
    "setpriority",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "setfsuid",
    "setfsgid",
    "capset",
    # file metadata that Landlock does not govern
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "mknod",
    "mknodat",
    # namespaces, mounts and the kernel
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "name_to_handle_at",
    "open_by_handle_at",
    "quotactl",
    "personality",
    "syslog",
    "vhangup",
    "lookup_dcookie",
    "fanotify_init",
    "memfd_create",
    "memfd_secret",
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


def apply_rlimits(memory_mb: int, cpu_s: int) -> bool:
    """Set the worker's resource limits. True when all the essential ones took effect."""
    memory = memory_mb * 1024 * 1024
    essential = [
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_FSIZE, 0, 0),
    ]
    ok = True
    for which, soft, hard in essential:
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            ok = False
    for which, value in ((resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_NPROC, 0)):
        # Best effort: NOFILE may be lower already; NPROC does not bind root.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))
    return ok


def _no_new_privs() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def apply_landlock(paths: list[str]) -> bool:
    """Restrict filesystem access to reading ``paths``. False when Landlock is unavailable."""
    if landlock is None:
        return False
    try:
        if landlock.landlock_abi_version() < 1:
            return False
        ruleset = landlock.Ruleset()  # handles (and so denies) every access right it knows
        read = landlock.FSAccess.READ_FILE | landlock.FSAccess.READ_DIR
        for path in paths:
            ruleset.allow(path, rules=read)
        _no_new_privs()
        ruleset.apply()
    except Exception:
        return False
    return True


def apply_seccomp() -> bool:
    """Install the syscall filter. False when seccomp or libseccomp is unavailable."""
    if pyseccomp is None:
        return False
    try:
        deny = pyseccomp.ERRNO(errno.EPERM)
        syscall_filter: Any = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        for name in DENIED_SYSCALLS:
            try:
                syscall_filter.add_rule(deny, name)
            except (OSError, ValueError, RuntimeError):
                continue  # not a syscall on this architecture
        # prlimit64 may read limits (new_limit NULL) but never set them.
        syscall_filter.add_rule(deny, "prlimit64", pyseccomp.Arg(2, pyseccomp.NE, 0))
        _no_new_privs()
        syscall_filter.load()
    except Exception:
        return False
    return True


def harden_process(
    memory_mb: int, cpu_s: int, seccomp: bool, use_landlock: bool
) -> dict[str, bool]:
    """Apply every layer this kernel allows; return which ones are active."""
    layers = {"rlimits": apply_rlimits(memory_mb, cpu_s), "landlock": False, "seccomp": False}
    if use_landlock:
        layers["landlock"] = apply_landlock(readable_paths())
    if seccomp:
        layers["seccomp"] = apply_seccomp()
    return layers
