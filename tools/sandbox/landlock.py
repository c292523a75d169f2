"""Landlock: the kernel's unprivileged access control, built once and applied per run.

The template builds one ruleset (:func:`build_ruleset`) and every run's child restricts
itself with it (:func:`restrict_self`), which costs one system call. The ruleset handles every
right the running kernel knows (so everything not granted is denied):

* **files** (ABI 1+): read-only access beneath the Python installation's directories, nothing
  else anywhere: no writes, no execution, no device ioctls, no other directory;
* **network** (ABI 4+): no TCP bind or connect;
* **scopes** (ABI 6+): no signals to any process outside the child's own domain (the template,
  the service, other runs: ``kill``, and ``F_SETOWN``/``O_ASYNC`` signal delivery) and no
  connection to abstract Unix sockets created outside it.

Written on ``ctypes`` rather than the ``landlock`` package, which knows neither network rules
nor scopes. Each part is reported separately, so an older kernel shows exactly what it lacks.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from tools.sandbox import libc

CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1

# File-system rights by the ABI version that introduced them.
_FS_RIGHTS_BY_ABI = {
    1: (1 << 13) - 1,  # EXECUTE .. MAKE_SYM
    2: 1 << 13,  # REFER
    3: 1 << 14,  # TRUNCATE
    5: 1 << 15,  # IOCTL_DEV
}
ACCESS_FS_READ_FILE = 1 << 2
ACCESS_FS_READ_DIR = 1 << 3
ACCESS_NET_ALL = (1 << 0) | (1 << 1)  # BIND_TCP | CONNECT_TCP, ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


@dataclass(frozen=True)
class Ruleset:
    """A built ruleset: its descriptor and which parts this kernel enforces."""

    fd: int
    abi: int
    network: bool  # TCP bind/connect denied
    scoped: bool  # signals and abstract sockets confined to the domain


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is unavailable or disabled."""
    try:
        return libc.landlock_create_ruleset(None, 0, CREATE_RULESET_VERSION)
    except OSError:
        return 0


def build_ruleset(readable: list[str]) -> Ruleset | None:
    """A ruleset granting read access beneath ``readable`` and nothing else; None when the
    kernel has no Landlock. Raises ``OSError`` when Landlock exists but the build fails."""
    abi = abi_version()
    if abi < 1:
        return None
    handled_fs = 0
    for since, rights in _FS_RIGHTS_BY_ABI.items():
        if abi >= since:
            handled_fs |= rights
    attr = _RulesetAttr(
        handled_access_fs=handled_fs,
        handled_access_net=ACCESS_NET_ALL if abi >= 4 else 0,
        scoped=(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    fd = libc.landlock_create_ruleset(attr, ctypes.sizeof(attr), 0)
    try:
        for path in readable:
            parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR, parent)
                libc.landlock_add_rule(fd, RULE_PATH_BENEATH, rule)
            finally:
                os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return Ruleset(fd=fd, abi=abi, network=abi >= 4, scoped=abi >= 6)


def restrict_self(ruleset: Ruleset) -> None:
    """Enforce the ruleset on this process for good (``no_new_privs`` must be set first)."""
    libc.landlock_restrict_self(ruleset.fd)
