"""The Python sandbox: run LLM-written programs, assuming every one of them is hostile.

Threat model
------------
The program is written by a model that may have been steered by anyone (a question, a web page
in an observation). We assume it will try to: read secrets (environment, files, other users'
data in memory), reach the network or the host (sockets, processes, shell), escape the language
restrictions (introspection, frames, format strings, allowed modules' references to ``os`` or
``sys``), exhaust the host (CPU, memory, output, recursion, compile-time blow-ups), outlive its
limits, or poison later runs (module state, RNG seeds, decimal context, finalizers). We do not
defend against kernel exploits or CPU side channels; workers run with the service's uid.

No layer is trusted alone:

1. **Language** (``policy.py``, ``modules.py``): RestrictedPython with every guard wired, no
   ``_``-names, guarded ``str.format``, size-checked ``**``/``*``/``<<``, writes only to the
   program's own objects, and an import allow-list of read-only module views.
2. **Process** (``pool.py``, ``worker.py``): code, including its compilation, only ever runs in
   pre-started worker processes (fresh interpreters, empty environment, empty directory).
   Wall-clock limit by killing the worker; output and result size caps inside the worker;
   length-prefixed JSON both ways, never pickle; per-run state reset and regular recycling.
3. **OS** (``oslayer.py``): rlimits (address space, CPU, no files, no cores), Landlock (read
   only the Python installation, write nothing) and seccomp (no sockets, processes, exec,
   signals, rlimit raises), each detected and reported in ``Sandbox.layers``.

Usage::

    async with Sandbox(SandboxConfig(workers=2)) as sandbox:
        result = await sandbox.run("def solution():\\n    return 6 * 7\\n")
        result.value  # 42

``python -m tools.sandbox FILE`` (or ``-``) runs one program and prints the result as JSON.
"""

from typing import TYPE_CHECKING, Any

from tools.sandbox.result import ExecutionResult, Limit, SandboxConfig

if TYPE_CHECKING:
    from tools.sandbox.pool import Sandbox, SandboxStartError

__all__ = ["ExecutionResult", "Limit", "Sandbox", "SandboxConfig", "SandboxStartError"]


def __getattr__(name: str) -> Any:
    # The pool (and asyncio) load on first use, so worker processes, which import this
    # package too, start without them.
    if name in ("Sandbox", "SandboxStartError"):
        from tools.sandbox import pool

        return getattr(pool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
