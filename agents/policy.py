"""The run policy: which actions a run may take and how many steps it may go on for.

The server's allow-list is the ceiling. A request may narrow it, never widen it: asking for an
action the server does not allow raises ``ActionNotAllowed`` (HTTP 403), it is not silently
dropped. ``finish`` is always part of a run's actions: it has no effect outside the run, and a
run without it could never end. The wall-clock deadline is not here: the caller enforces it
around the whole run (``service.runner``), so that it also bounds a backend that hangs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agents.errors import ActionNotAllowed

FINISH = "finish"
Protocol = Literal["text", "json", "tools"]  # agents.protocol
MAX_OBSERVATION_CHARS = 4000  # what a step's observation keeps, in ReAct and PAL alike


def truncated(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... truncated {len(text) - limit} characters]"


@dataclass(frozen=True, slots=True)
class RunPolicy:
    allowed: tuple[str, ...]  # lower-case names, always including "finish"
    max_steps: int = 8
    max_consecutive_refusals: int = 3
    max_observation_chars: int = MAX_OBSERVATION_CHARS
    max_tokens: int = 512  # per LLM call
    temperature: float = 0.0
    protocol: Protocol = "text"
    # A ``tools`` run on a server found to ignore tool calls (agents.protocol): a prose reply
    # ends the run with an error instead of passing for the answer.
    tools_ignored: bool = False

    def allows(self, action: str) -> bool:
        return action.lower() in self.allowed


def resolve_actions(
    server_allowed: Sequence[str], requested: Sequence[str] | None
) -> tuple[str, ...]:
    """The run's actions: the request's list (default: all) inside the server's allow-list."""
    server = tuple(dict.fromkeys(a.lower() for a in server_allowed))
    if requested is None:
        chosen = server
    else:
        wanted = tuple(dict.fromkeys(a.strip().lower() for a in requested))
        for action in wanted:
            if action not in server:
                raise ActionNotAllowed(action, server)
        chosen = wanted
    return chosen if FINISH in chosen else (*chosen, FINISH)


def bounded(requested: float | None, default: float, maximum: float) -> float:
    """A request's budget, capped by the server's maximum."""
    value = default if requested is None else requested
    return min(value, maximum)
