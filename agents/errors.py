"""Exceptions of the agents package.

    AgentError
    ├── LLMError                    the model backend failed; ends the run (HTTP 502)
    │   ├── LLMTimeout              a call outlived its timeout (after retries)
    │   ├── LLMRateLimited          429 after bounded retries
    │   ├── LLMConnectionError      the endpoint could not be reached
    │   ├── LLMBadResponse          the endpoint answered with something unusable
    │   └── LLMConfigError          a backend cannot be built (missing model, bad path)
    ├── ParseError                  a completion held no usable action (recoverable:
    │                               goes back to the model as an observation)
    └── ActionNotAllowed            an action outside the run's policy (recoverable)

A spent step budget or deadline is not an exception: the loop ends with a status.

Recoverable versus fatal is decided by type: the loop catches ``ParseError`` and
``ActionNotAllowed`` and tells the model; any ``LLMError`` ends the run with a status.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of everything the agents package raises on purpose."""


class LLMError(AgentError):
    """The LLM backend failed."""


class LLMTimeout(LLMError):
    """An LLM call outlived its timeout."""


class LLMRateLimited(LLMError):
    """The backend kept answering 429."""


class LLMConnectionError(LLMError):
    """The backend could not be reached."""


class LLMBadResponse(LLMError):
    """The backend answered, but not with a usable completion."""


class LLMConfigError(LLMError):
    """A backend cannot be constructed from its configuration."""


class ParseError(AgentError):
    """A completion could not be parsed into an action."""


class ActionNotAllowed(AgentError):
    """The model asked for an action outside the run's policy."""

    def __init__(self, action: str, allowed: tuple[str, ...]) -> None:
        self.action = action
        self.allowed = allowed
        super().__init__(f"action {action!r} is not allowed; allowed: {', '.join(allowed)}")
