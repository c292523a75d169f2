"""The Python sandbox: run LLM-written programs, assuming every one of them is hostile.

Threat model
------------
The program is written by a model that may have been steered by anyone (a question, a web page
in an observation). We assume it will try to: read secrets (environment, files, other users'
data in memory), reach the network or the host (sockets, processes, shell), escape the language
restrictions (introspection, frames, format strings, allowed modules' references to ``os`` or
``sys``), exhaust the host (CPU, memory, output, recursion, compile-time blow-ups), outlive its
limits, poison later runs (module state, caches, classes, RNG seeds, decimal context), or act on
other processes (signals, scheduling, priorities). We do not defend against kernel exploits
through the allowed system calls or CPU side channels; for those, use a microVM executor.

No layer is trusted alone, and nothing survives a run:

1. **Language** (``compiler.py``, ``policy.py``, ``standins.py``, ``limits.py``, ``modules.py``,
   ``names.py``): RestrictedPython with every guard wired; decisions on exact builtin types and
   identity, never on what a program's object says about itself; ``str.format`` in any form
   routed to a guarded formatter; ``type()`` never hands out a metaclass or a context class;
   size guards on exact values; an import allow-list of read-only module views.
2. **Process** (``pool.py``, ``template.py``, ``child.py``): each program runs in a new process
   forked from a pre-initialised template that never runs, compiles or holds a program; the
   service writes the program to the child and reads its reply directly; replies are
   length-prefixed JSON of exact builtin types, never pickle.
3. **Kernel** (``confine.py``, ``seccomp.py``, ``landlock.py``, ``libc.py``): namespaces for the
   template where allowed; per child a seccomp allow-list with argument filters, Landlock
   (files read-only, no TCP, signal and abstract-socket scopes), uid 65534 when possible, no
   capabilities, rlimits, a wall-clock kill. Detected, never assumed: ``Sandbox.layers``; the
   required ones (``result.REQUIRED_LAYERS``) stop the start when missing unless
   ``allow_weak``.

Usage::

    async with Sandbox(SandboxConfig(workers=2)) as sandbox:
        result = await sandbox.run("def solution():\\n    return 6 * 7\\n")
        result.value  # 42

``python -m tools.sandbox FILE`` (or ``-``) runs one program and prints the result as JSON.
"""

from typing import TYPE_CHECKING, Any

from tools.sandbox.result import ExecutionResult, Limit, SandboxConfig

if TYPE_CHECKING:
    from tools.sandbox.pool import OWNER, Sandbox, SandboxStartError

__all__ = ["OWNER", "ExecutionResult", "Limit", "Sandbox", "SandboxConfig", "SandboxStartError"]


def __getattr__(name: str) -> Any:
    # The pool (and asyncio) load on first use, so worker processes, which import this
    # package too, start without them.
    if name in ("OWNER", "Sandbox", "SandboxStartError"):
        from tools.sandbox import pool

        return getattr(pool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
