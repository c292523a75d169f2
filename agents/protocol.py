"""Which step protocol a ReAct run speaks with the configured backend (``AGENT_PROTOCOL``).

- ``text``: ``Thought: ...`` / ``Action: name[input]``, parsed leniently; with a backend that
  honours grammars (the embedded model) each step is also constrained by a GBNF grammar.
- ``json``: each step is one JSON object ``{"thought", "action", "action_input"}`` requested
  with a JSON schema whose ``action`` is an enum of the run's actions, which the server
  enforces (``agents.llm.capabilities``).
- ``tools``: native tool calls.
- ``auto`` (the default) takes the first the backend enforces: a grammar, then a JSON schema,
  then tool calls, else text. Small models write malformed steps unless they are made not to:
  against llama.cpp's server the 0.5B model's text steps failed where its JSON steps held.

What a server enforces is found by asking it (``OpenAILLM.probe``), once: at start-up in the
background, or by the first run that needs it. A probe that cannot reach the server decides
nothing: runs meanwhile use ``text`` under ``auto`` (what every server can do) and the probe is
tried again after ``RETRY_S``. An explicit ``tools`` against a server the probe found ignoring
tools is kept, since the operator asked for it, but such a run's prose reply ends it with an
error saying so, instead of being passed off as the answer (``RunPolicy.tools_ignored``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import structlog

from agents.errors import LLMError
from agents.llm.base import LLM
from agents.llm.capabilities import Capabilities, Probing
from agents.policy import Protocol

Configured = Literal["auto", "text", "json", "tools"]
RETRY_S: Final = 30.0
PROBE_TIMEOUT_S: Final = 90.0  # three short generations; a cold local server is slow

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Resolved:
    protocol: Protocol
    tools_ignored: bool = False  # a ``tools`` run on a server found to ignore tools
    decided: bool = True  # False: the probe could not run yet; a fallback, tried again later


def choose(configured: Configured, caps: Capabilities, *, native_tools: bool) -> Resolved:
    """The protocol for ``configured`` given what the backend enforces. ``native_tools`` is
    the backend's ``supports_tools`` (False: it cannot even send tools)."""
    if configured == "text":
        return Resolved("text")
    if configured == "json":
        return Resolved("json")
    if configured == "tools":
        return Resolved("tools", tools_ignored=native_tools and caps.tools is False)
    if caps.grammar:
        return Resolved("text")  # the grammar constrains the text steps
    if caps.json_schema is not None:
        return Resolved("json")
    if caps.tools and native_tools:
        return Resolved("tools")
    return Resolved("text")


class ProtocolChoice:
    """The service's one answer to "which protocol?", shared by every run (and shown by
    ``/readyz``). ``resolve`` probes at most once at a time and caches a successful probe."""

    def __init__(
        self,
        llm: LLM,
        configured: Configured,
        *,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        retry_s: float = RETRY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._llm = llm
        self._configured = configured
        self._probe_timeout_s = probe_timeout_s
        self._retry_s = retry_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._caps: Capabilities | None = None
        self._failed_at: float | None = None
        self._error: str | None = None
        if configured == "text" or llm.supports_grammar or not _can_probe(llm):
            # Nothing to ask: text needs nothing, and the embedded model says what it does.
            # A backend that cannot be asked is not assumed to do tool calls (None: unknown).
            tools = False if not llm.supports_tools else None
            self._caps = Capabilities(grammar=llm.supports_grammar, tools=tools)

    @property
    def configured(self) -> Configured:
        return self._configured

    async def resolve(self) -> Resolved:
        """The protocol for a run starting now."""
        caps = self._caps or await self._probe()
        if caps is None:  # not known yet: what every server can do, or what was asked for
            fallback: Protocol = "text" if self._configured == "auto" else self._configured
            return Resolved(fallback, decided=False)
        return choose(self._configured, caps, native_tools=self._llm.supports_tools)

    def describe(self) -> dict[str, Any]:
        """For ``/readyz``: what was asked, what runs get, and what the backend enforces."""
        caps = self._caps
        body: dict[str, Any] = {"configured": self._configured}
        if caps is None:
            body["effective"] = "text" if self._configured == "auto" else self._configured
            body["probe"] = "pending" if self._error is None else f"failed: {self._error}"
            return body
        resolved = choose(self._configured, caps, native_tools=self._llm.supports_tools)
        body["effective"] = resolved.protocol
        body["capabilities"] = caps.as_dict()
        if resolved.tools_ignored:
            body["warning"] = (
                "AGENT_PROTOCOL=tools, but the server answered the tool-call probe in prose: "
                "it does not do tool calls; use AGENT_PROTOCOL=auto"
            )
        elif self._configured == "json" and caps.probed and caps.json_schema is None:
            body["warning"] = (
                "AGENT_PROTOCOL=json, but the server did not enforce the probe's JSON schema: "
                "steps are asked for as JSON and may not be; use AGENT_PROTOCOL=auto"
            )
        return body

    async def _probe(self) -> Capabilities | None:
        async with self._lock:
            if self._caps is not None:
                return self._caps
            if self._failed_at is not None and self._clock() - self._failed_at < self._retry_s:
                return None
            llm = self._llm
            assert isinstance(llm, Probing)  # else the capabilities were set at __init__
            started = self._clock()
            try:
                async with asyncio.timeout(self._probe_timeout_s):
                    caps = await llm.probe()
            except (LLMError, TimeoutError) as exc:
                self._failed_at = self._clock()
                self._error = str(exc)[:300] or type(exc).__name__
                log.warning("LLM capability probe failed; will try again", error=self._error)
                return None
            self._caps, self._error = caps, None
            resolved = choose(self._configured, caps, native_tools=self._llm.supports_tools)
            log.info(
                "LLM capabilities probed",
                configured=self._configured,
                protocol=resolved.protocol,
                json_schema=caps.json_schema,
                tools=caps.tools,
                seconds=round(self._clock() - started, 2),
            )
            if resolved.tools_ignored:
                log.warning("AGENT_PROTOCOL=tools, but the server ignores tool calls")
            return caps


def _can_probe(llm: LLM) -> bool:
    return isinstance(llm, Probing)
