"""What one sandbox run returns, and the limits it runs under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Which limit stopped a run, when one did.
Limit = Literal["time", "cpu", "memory", "output", "recursion", "int_size", "nesting", "busy"]

NO_OUTPUT = (
    "(no output: the program printed nothing and set no result; a bare expression shows "
    "nothing, as in a script: print() what you need)"
)
# Layers a run must have unless ``allow_weak`` (SANDBOX_ALLOW_WEAK) says otherwise; the rest are
# used where the kernel allows them and reported either way.
REQUIRED_LAYERS = ("restrictedpython", "process", "rlimits", "seccomp", "landlock")
OPTIONAL_LAYERS = (
    "capabilities",
    "landlock_network",
    "landlock_scopes",
    "namespaces",
    "uid",
)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Every limit, with safe defaults. The service builds one from its settings."""

    workers: int = 2  # templates: one owner's runs in parallel (one more runs for the others)
    queue_size: int = 32  # runs waiting for a template before "sandbox busy"
    timeout_s: float = 5.0  # wall clock per run; enforced by killing the run's process
    memory_mb: int = 512  # RLIMIT_AS of a run's process
    max_output_bytes: int = 64 * 1024  # stdout cap and result-size cap, each
    max_code_bytes: int = 64 * 1024  # a bigger program is refused before it is sent
    max_int_digits: int = 10_000  # int <-> str conversion limit, and guarded pow/mul
    recursion_limit: int = 1000  # a program's recursion depth, as CPython counts it (its default)
    max_nesting: int = 100  # AST depth refused at compile time
    runs_per_template: int = 5000  # then a new template (and a new random hash seed) takes over
    seccomp: bool = True  # use when the kernel allows; detected, never assumed
    landlock: bool = True
    namespaces: bool = True  # user/PID/network/IPC/UTS namespaces where the kernel allows
    run_uid: int = 65534  # uid/gid of a run's process when the template may switch to it
    allow_weak: bool = False  # start even when a required layer is missing (never by default)
    max_sequence_items: int = 10_000_000  # guarded `seq * n` (str, list, ...) result length
    queue_wait_s: float = 30.0  # longest wait for a free worker before "sandbox busy"
    start_timeout_s: float = 30.0  # a worker that is not ready by then is a failed start


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """The outcome of one program.

    ``value`` is the PAL result (``solution()`` → ``result``/``answer`` → last printed line)
    converted to JSON-safe data (int, float, str, bool, None, lists and dicts of those);
    ``value_repr`` is its ``repr()``. On failure ``ok`` is False, ``error_kind`` names the
    class of failure (a Python exception name such as ``ZeroDivisionError``, or one of
    ``SyntaxError``, ``ImportError``, ``SecurityError``, ``Timeout``, ``MemoryLimit``,
    ``OutputLimit``, ``SandboxBusy``, ``Crashed`` (the program brought its interpreter down),
    ``WorkerCrashed`` (the sandbox itself failed)) and ``error`` is a short message safe to
    show to the model. ``limit`` says which limit was hit, when one was.
    """

    ok: bool
    value: Any = None
    value_repr: str | None = None
    stdout: str = ""
    error_kind: str | None = None
    error: str | None = None
    duration_ms: float = 0.0
    limit: Limit | None = None

    def observation(self) -> str:
        """The text an agent shows the model after a run."""
        parts: list[str] = []
        if self.stdout:
            parts.append(self.stdout.rstrip("\n"))
        if self.ok:
            if self.value_repr is not None and self.value_repr != (self.stdout.strip() or None):
                parts.append(f"result: {self.value_repr}")
        else:
            parts.append(f"{self.error_kind}: {self.error}")
        # A bare expression shows nothing, as in a script: say so, and what to write (the
        # 1.5B model, shown "(no output)" for len(...), guessed the count: pass EZ).
        return "\n".join(parts) if parts else NO_OUTPUT
