"""The few kernel calls the sandbox needs that the standard library does not wrap (in 3.11).

``prctl``, ``unshare``, ``capset`` and the raw Landlock and seccomp entry points, through
``ctypes`` with ``errno`` checked: every failure raises ``OSError`` with the kernel's reason.
Only the sandbox's template and its children load this module; the service never does.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
# Resolved now, in the template: a child that looked them up would pay for it on every run.
_prctl = _libc.prctl
_unshare = _libc.unshare
_capset = _libc.capset
_capget = _libc.capget
_syscall = _libc.syscall
# The same fork, called without releasing the GIL and without Python's own at-fork work (see
# fork_without_hooks).
_fork = ctypes.PyDLL(None, use_errno=True).fork

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Landlock's numbers are the same on every architecture (they were added after the tables
# were unified); seccomp goes through prctl, which exists everywhere.
SYS_CLOSE_RANGE = 436
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446

_CAPABILITY_VERSION_3 = 0x20080522


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(arg4),
            ctypes.c_ulong(arg5),
        ),
        f"prctl({option})",
    )


def close_from(first: int) -> None:
    """Close every descriptor from ``first`` up, however high (``close_range(first, ~0U)``,
    Linux 5.9+)."""
    _check(
        _syscall(
            ctypes.c_long(SYS_CLOSE_RANGE),
            ctypes.c_uint(first),
            ctypes.c_uint(0xFFFFFFFF),
            ctypes.c_uint(0),
        ),
        "close_range",
    )


def no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def unshare(flags: int) -> None:
    _check(_unshare(ctypes.c_int(flags)), "unshare")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_capabilities() -> None:
    """Clear every capability of this process (effective, permitted, inheritable, ambient)."""
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def capabilities_permitted() -> int:
    """This process's permitted capabilities, as a bit mask (0: none at all)."""
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_capget(ctypes.byref(header), ctypes.byref(data)), "capget")
    low, high = data[0], data[1]
    return int(low.permitted | high.permitted << 32 | low.effective | high.effective << 32)


def fork_without_hooks() -> int:
    """``fork()`` without CPython's before/after-fork work; the template's way to fork a run.

    ``os.fork`` re-initialises the GIL, thread states and the import lock in the child and runs
    the Python-level at-fork hooks (``random`` re-seeds its global instance). The template is
    single-threaded and holds no lock when it forks, a run never uses the global ``random``
    instance (it gets one of its own), so none of that is needed; skipping it spares every
    child about 190 page faults (~0.7 ms on this machine's virtualised memory). glibc's own
    fork handlers still run. The GIL stays held across the call (``PyDLL``).
    """
    return int(_check(_fork(), "fork"))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class SeccompProgram:
    """A compiled seccomp BPF program, kept ready to load in one call after a fork."""

    def __init__(self, bpf: bytes) -> None:
        if not bpf or len(bpf) % 8:
            raise ValueError("a BPF program is a non-empty sequence of 8-byte instructions")
        self._buffer = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.addressof(self._buffer))
        self.instructions = len(bpf) // 8

    def load(self) -> None:
        """Install the filter on this process (``no_new_privs`` must be set first)."""
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self._prog))


def landlock_create_ruleset(attr: ctypes.Structure | None, size: int, flags: int) -> int:
    pointer = ctypes.byref(attr) if attr is not None else None
    return _check(
        _syscall(
            ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET),
            pointer,
            ctypes.c_size_t(size),
            ctypes.c_uint32(flags),
        ),
        "landlock_create_ruleset",
    )


def landlock_add_rule(ruleset_fd: int, rule_type: int, attr: ctypes.Structure) -> None:
    _check(
        _syscall(
            ctypes.c_long(SYS_LANDLOCK_ADD_RULE),
            ctypes.c_int(ruleset_fd),
            ctypes.c_int(rule_type),
            ctypes.byref(attr),
            ctypes.c_uint32(0),
        ),
        "landlock_add_rule",
    )


def landlock_restrict_self(ruleset_fd: int, flags: int = 0) -> None:
    _check(
        _syscall(
            ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF),
            ctypes.c_int(ruleset_fd),
            ctypes.c_uint32(flags),
        ),
        "landlock_restrict_self",
    )
