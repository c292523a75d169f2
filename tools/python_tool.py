"""The ``python`` action: run the model's program in the sandbox and show it what happened.

The observation is what the program printed, as the prompt tells the model; the PAL answer
(``result: <repr>``) only when it printed nothing, and the error when it failed. A full
sandbox queue raises ``ToolUnavailable`` (the run goes on and the model may try again later);
any other failure inside the sandbox is an observation. Nothing but ``ToolError`` ever leaves
``run``.
"""

from __future__ import annotations

import logging

from tools.base import ToolError, ToolOutput, ToolUnavailable
from tools.sandbox import Sandbox
from tools.sandbox.result import ExecutionResult

logger = logging.getLogger(__name__)


class PythonTool:
    """Runs Python in the injected :class:`~tools.sandbox.Sandbox`."""

    name = "python"
    description = (
        "Run a Python program in a sandbox (math, fractions, decimal, statistics, datetime, "
        "itertools, collections, re ...); shows what it prints."
    )
    input_hint = "code"

    def __init__(self, sandbox: Sandbox, timeout_s: float | None = None) -> None:
        self._sandbox = sandbox
        self._timeout_s = timeout_s

    async def run(self, tool_input: str) -> str:
        code = _strip_fence(tool_input)
        if not code.strip():
            raise ToolError("the python action needs a program between the brackets")
        try:
            result = await self._sandbox.run(code, timeout_s=self._timeout_s)
        except Exception as exc:  # the sandbox never should; translate at the boundary anyway
            logger.exception("sandbox failure")
            raise ToolError("the Python sandbox failed; try again") from exc
        if result.limit == "busy":
            raise ToolUnavailable("the Python sandbox is busy; try again shortly")
        observation = _shown(result)
        if result.error_kind == "NameError":  # a name an earlier step's program made (pass EZ:
            observation += FRESH  # the 1.5B model lost 3 of 8 steps to it, never told why)
        return ToolOutput(observation, failed=not result.ok, result=_result_text(result))


FRESH = "\n(each program runs on its own: nothing an earlier one defined is kept; define it)"


def _shown(result: ExecutionResult) -> str:
    """What the model is shown: a program that printed shows what it printed, and nothing
    more. The PAL answer's ``result: <repr>`` line repeated a printed 'laptcaer' in quotes,
    which the 1.5B model copied into its answer, and showed a variable that happened to be
    named ``result`` as if the program had printed it (pass EZ)."""
    if result.ok and result.stdout.strip():
        return result.stdout.rstrip("\n")
    return result.observation()


def _result_text(result: ExecutionResult) -> str | None:
    """What the program computed, as text: the last line it printed (what the model saw),
    else its result."""
    lines = result.stdout.strip().splitlines()
    if not lines and result.value is not None:
        return result.value if isinstance(result.value, str) else result.value_repr
    return lines[-1].strip() if lines else None


def _strip_fence(text: str) -> str:
    """Accept a program wrapped in a Markdown code fence, as models often write it."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and len(stripped) >= 6:
        body = stripped[3:-3]
        first, _, rest = body.partition("\n")
        return rest if first.strip().isidentifier() or not first.strip() else body
    return text
