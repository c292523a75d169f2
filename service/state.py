"""What the app shares across requests, created once in the lifespan and reached through
``Depends``: the LLM client, the sandbox, the action registry, the run store, metrics and the
access checks. Nothing here holds per-run state: one agent is built per request, by
``agents``."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from fastapi import Request

from agents.factory import AgentFactory
from agents.llm.base import LLM
from agents.protocol import ProtocolChoice
from service.admission import Admission
from service.auth import Authenticator
from service.collections import Collections
from service.errors import ProblemError
from service.metrics import Metrics
from service.readiness import ReadinessCache
from service.runs import RunManager
from service.settings import Settings
from service.store import RunStore
from tools.registry import ToolRegistry
from tools.sandbox import Sandbox


def _documents(count: int) -> str:
    return "a document" if count == 1 else f"{count} documents"


class IngestSlots:
    """Documents parsed, chunked and stored at once in this process: ``RUNNING`` at a time
    (a 10 MB text takes ~450 MB while LangChain splits it; four at once took a process from
    0.2 to 2.2 GB), ``WAITING`` more in line, the rest refused (503, ``Retry-After``). One
    owner holds at most ``PER_OWNER`` of those places (429 past it): alone, a client sending
    ten documents at once took them all and every other client's upload got a 503 (red-team
    pass X); holding both running places with two small PDFs that parse until their time
    runs out, one client made every other's upload wait a minute (pass CV): one owner never
    holds them all."""

    RUNNING = 2
    WAITING = 4
    PER_OWNER = RUNNING - 1

    def __init__(self) -> None:
        self._running = asyncio.Semaphore(self.RUNNING)
        self._waiting = 0
        self._held: collections.Counter[str] = collections.Counter()

    @contextlib.asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[None]:
        if self._held[owner] >= self.PER_OWNER:
            raise ProblemError(
                429,
                f"you are adding {_documents(self.PER_OWNER)} already; retry when one is done",
                headers={"Retry-After": "2"},
            )
        if self._running.locked() and self._waiting >= self.WAITING:
            raise ProblemError(
                503,
                "the service is adding other documents; retry shortly",
                headers={"Retry-After": "2"},
            )
        self._held[owner] += 1
        try:
            self._waiting += 1
            try:
                await self._running.acquire()
            finally:
                self._waiting -= 1
            try:
                yield
            finally:
                self._running.release()
        finally:
            self._held[owner] -= 1
            if not self._held[owner]:
                del self._held[owner]


class TakenSlots:
    """Places taken, never waited for: one per holder (429 past it) and ``running`` in all
    (503), each with ``Retry-After``; given back when the work is done (or its client goes).

    Exports: one holds up to 10,000 runs' transcripts while it is written: ten at once from
    one key took the process from 148 to 775 MB and another client's ``/ask`` waited 11 s
    (red-team pass CV). Document uploads: a body is held whole while it arrives, before any
    ingest place is taken; 120 trickled 10 MB uploads took the process from 123 MB to
    1.6 GB (pass EF)."""

    def __init__(self, running: int, mine: str, busy: str, retry_after: int) -> None:
        self.running = running
        self._mine, self._busy = mine, busy
        self._retry = {"Retry-After": str(retry_after)}
        self._held: set[str] = set()

    def take(self, holder: str) -> None:
        if holder in self._held:
            raise ProblemError(429, self._mine, headers=self._retry)
        if len(self._held) >= self.running:
            raise ProblemError(503, self._busy, headers=self._retry)
        self._held.add(holder)

    def give_back(self, holder: str) -> None:
        self._held.discard(holder)

    @contextlib.contextmanager
    def holding(self, holder: str) -> Iterator[None]:
        self.take(holder)
        try:
            yield
        finally:
            self.give_back(holder)


def export_slots() -> TakenSlots:
    return TakenSlots(
        2,
        "you are exporting already; retry when that export is done",
        "the service is making other exports; retry shortly",
        retry_after=5,
    )


def upload_slots() -> TakenSlots:
    return TakenSlots(
        8,
        "you are sending a document already; retry when it has arrived",
        "the service is receiving other documents; retry shortly",
        retry_after=2,
    )


@dataclass(slots=True)
class AppState:
    settings: Settings
    llm: LLM
    sandbox: Sandbox
    tools: ToolRegistry
    store: RunStore
    collections: Collections  # documents the retrieve action reads, in the store's database
    metrics: Metrics
    auth: Authenticator
    admission: Admission
    agents: AgentFactory  # builds each run's agent from llm, sandbox and tools
    runs: RunManager  # the runs in progress in this process
    protocol: ProtocolChoice  # AGENT_PROTOCOL, resolved against what the LLM enforces
    readiness: ReadinessCache = field(default_factory=ReadinessCache)  # /readyz's checks
    ingests: IngestSlots = field(default_factory=lambda: IngestSlots())  # documents in work
    exports: TakenSlots = field(default_factory=export_slots)  # exports being sent
    uploads: TakenSlots = field(default_factory=upload_slots)  # document bodies arriving
    # METRICS_KEYS' check for /metrics, when set (the service-wide counters are every
    # tenant's activity: a tenant's key reads them only when no operator key is configured).
    metrics_auth: Authenticator | None = None


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.reactpal
    return state
