"""The tool interface every action implements, and the exceptions tools raise.

A tool turns one action input (text written by an LLM: untrusted) into one observation (text
sent back to the LLM). A tool never raises anything but ``ToolError``: everything a
third-party library throws is translated at the boundary. The agent turns a ``ToolError`` into
an observation, so a failing tool never ends a run.

    ToolError               the action failed; ``str(exc)`` is a safe observation text
    └── ToolUnavailable     the backing service cannot be reached now (search offline,
                            sandbox busy); the run goes on, the model may try something else
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class ToolError(Exception):
    """An action failed. The message is shown to the model as the observation."""


class ToolUnavailable(ToolError):
    """The service behind a tool cannot be reached right now."""


class ToolOutput(str):
    """An observation text with what the agent should know about it. ``failed``: the action
    ran and failed (a program's exception), so the text is an error, never an answer.
    ``result``: the value the action produced, as text, when it produced one (what a run
    whose step budget ran out can answer with). A plain ``str`` from a tool is an output that
    did not fail, whose whole text is its result."""

    failed: bool
    result: str | None

    def __new__(cls, text: str, *, failed: bool = False, result: str | None = None) -> ToolOutput:
        output = super().__new__(cls, text)
        output.failed = failed
        output.result = None if failed else result
        return output


@runtime_checkable
class Tool(Protocol):
    """One action. ``name`` is what the model writes in ``Action: name[input]``."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str:
        """One line for the prompt and ``GET /actions``."""
        ...

    @property
    def input_hint(self) -> str:
        """What goes between the brackets, e.g. ``code`` or ``query`` (also the argument name
        of the native tool-call schema)."""
        ...

    async def run(self, tool_input: str) -> str:
        """Run the action and return the observation text. Raises only ``ToolError``."""
        ...


def availability(tool: Tool) -> str | None:
    """Why ``tool`` cannot be used right now, or None. A tool whose service can be down
    (search) says so with an ``availability()`` method that answers at once, without I/O."""
    check = getattr(tool, "availability", None)
    reason = check() if callable(check) else None
    return reason if isinstance(reason, str) and reason else None


def cited_sources(tool: Tool, answer: str | None) -> list[dict[str, object]]:
    """What a tool that shows citable passages (``retrieve``) showed the run, for the run's
    ``details.sources``: a ``sources(answer)`` method on the tool; ``[]`` for other tools."""
    sources = getattr(tool, "sources", None)
    found = sources(answer) if callable(sources) else None
    return list(found) if isinstance(found, list) else []
