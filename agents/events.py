"""Typed step events, yielded by the ReAct loop and PAL mode as they happen.

The HTTP layer maps them to server-sent events or collects them into the JSON response; the
loops know nothing about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agents.llm.base import Usage

RunStatus = Literal["finished", "max_steps", "timeout", "error", "cancelled", "interrupted"]


@dataclass(frozen=True, slots=True)
class ThoughtEvent:
    step: int
    text: str


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """``action`` is None when nothing could be parsed from the completion."""

    step: int
    action: str | None
    action_input: str


@dataclass(frozen=True, slots=True)
class ObservationEvent:
    """``refused`` is True when the action was not executed (not allowed, unparsable,
    repeated)."""

    step: int
    text: str
    refused: bool = False


@dataclass(frozen=True, slots=True)
class FinalEvent:
    status: RunStatus
    answer: str | None
    usage: Usage = field(default_factory=Usage)
    llm_calls: int = 0
    error: str | None = None  # why, when status is "error" or "timeout"
    details: dict[str, Any] = field(default_factory=dict)  # mode-specific (PAL votes, ...)


StepEvent = ThoughtEvent | ActionEvent | ObservationEvent | FinalEvent
