"""Exceptions of the agents package.

    AgentError
    ├── LLMError                    the model backend failed; ends the run (HTTP 502)
    │   ├── LLMTimeout              a call outlived its timeout (after retries)
    │   ├── LLMRateLimited          429 after bounded retries
    │   ├── LLMConnectionError      the endpoint could not be reached
    │   ├── LLMBadResponse          the endpoint answered with something unusable
    │   │   └── LLMServerError      ... a server error (HTTP 5xx)
    │   └── LLMConfigError          a backend cannot be built (missing model, bad path)
    ├── ParseError                  a completion held no usable action (recoverable:
    │                               goes back to the model as an observation)
    └── ActionNotAllowed            an action outside the run's policy (recoverable)

A spent step budget or deadline is not an exception: the loop ends with a status.

Each ``LLMError`` class has a stable ``reason`` and a generic ``public`` sentence: what a client
of the service is told. The message itself names the endpoint and echoes what it answered, so
it goes to the operator's log only (issue: upstream details reached clients).

Recoverable versus fatal is decided by type: the loop catches ``ParseError`` and
``ActionNotAllowed`` and tells the model; any ``LLMError`` ends the run with a status.
"""

from __future__ import annotations

from typing import ClassVar


class AgentError(Exception):
    """Base of everything the agents package raises on purpose."""


class LLMError(AgentError):
    """The LLM backend failed."""

    reason: ClassVar[str] = "llm_error"
    public: ClassVar[str] = "the LLM backend failed"


class LLMTimeout(LLMError):
    """An LLM call outlived its timeout."""

    reason = "llm_timeout"
    public = "the LLM backend did not answer in time"


class LLMRateLimited(LLMError):
    """The backend kept answering 429."""

    reason = "llm_rate_limited"
    public = "the LLM backend kept refusing with rate limits"


class LLMConnectionError(LLMError):
    """The backend could not be reached."""

    reason = "llm_unavailable"
    public = "the LLM backend could not be reached"


class LLMBadResponse(LLMError):
    """The backend answered, but not with a usable completion."""

    reason = "llm_bad_response"
    public = "the LLM backend answered with something unusable"


class LLMServerError(LLMBadResponse):
    """The backend answered with a server error (HTTP 5xx)."""

    reason = "llm_unavailable"
    public = "the LLM backend failed on its side"


class LLMConfigError(LLMError):
    """A backend cannot be constructed from its configuration."""

    reason = "llm_misconfigured"
    public = "the LLM backend is not configured correctly"


class ParseError(AgentError):
    """A completion could not be parsed into an action."""


class ActionNotAllowed(AgentError):
    """The model asked for an action outside the run's policy."""

    def __init__(self, action: str, allowed: tuple[str, ...]) -> None:
        self.action = action
        self.allowed = allowed
        super().__init__(f"action {action!r} is not allowed; allowed: {', '.join(allowed)}")
