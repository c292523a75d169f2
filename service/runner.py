"""Runs one agent for one request: deadline, error mapping, step collection and storage.

``RunSession.events()`` wraps the agent's events and always ends with exactly one
``FinalEvent``: the agent's own, or one made here when the deadline passed (``timeout``), the
LLM backend failed (``error``, HTTP 502) or something unexpected broke (``error``, HTTP 500).
Whatever happens, including a client that hangs up mid-stream, the run is stored when the
session ends, before the final event goes out; when the store fails, that event and the
response say so (``stored: false`` and ``store_error``), and a run whose start cannot be
recorded is not run at all (``StoreUnavailable``, HTTP 503).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from agents.errors import LLMError
from agents.events import (
    ActionEvent,
    FinalEvent,
    ObservationEvent,
    RunStatus,
    StepEvent,
    ThoughtEvent,
)
from agents.llm.base import Usage as LLMUsage
from service.metrics import Metrics
from service.schemas import AskResponse, Step, Usage
from service.store import RunStore, StoreUnavailable

log = structlog.get_logger(__name__)

# Which HTTP status a non-streamed run that ended this way is answered with.
FAILURE_STATUS = {"llm": 502, "timeout": 504, "internal": 500}


@dataclass(slots=True)
class _Collected:
    steps: dict[int, Step] = field(default_factory=dict)
    final: FinalEvent | None = None

    def add(self, event: StepEvent) -> None:
        if isinstance(event, FinalEvent):
            self.final = event
            return
        step = self.steps.setdefault(event.step, Step())
        if isinstance(event, ThoughtEvent):
            step.thought = event.text
        elif isinstance(event, ActionEvent):
            step.action, step.action_input = event.action, event.action_input
        elif isinstance(event, ObservationEvent):
            step.observation = event.text

    def ordered(self) -> list[Step]:
        return [self.steps[k] for k in sorted(self.steps)]


class RunSession:
    """One run: create with the agent's event stream, iterate ``events()``, read ``response``."""

    def __init__(
        self,
        *,
        mode: str,
        question: str,
        agent_events: AsyncIterator[StepEvent],
        timeout_s: float,
        store: RunStore,
        metrics: Metrics,
    ) -> None:
        self.run_id = uuid.uuid4().hex
        self.mode = mode
        self._question = question
        self._agent_events = agent_events
        self._timeout_s = timeout_s
        self._store = store
        self._metrics = metrics
        self._collected = _Collected()
        self._started = time.monotonic()
        self.failure: str | None = None  # "llm" | "timeout" | "internal"
        self.store_error: str | None = None  # why the run's end could not be stored
        self._ended: float | None = None

    async def start(self) -> None:
        """Record the run before it begins, so that it is stored whatever happens next."""
        structlog.contextvars.bind_contextvars(run_id=self.run_id)  # on every line from here
        try:
            await self._store.create(self.run_id, self.mode, self._question)
        except StoreUnavailable as exc:  # HTTP 503: nothing runs that could not be recorded
            raise StoreUnavailable(f"{exc}; the run was not started") from exc

    async def events(self) -> AsyncIterator[StepEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        agent = self._agent_events
        self._metrics.in_flight.inc()
        try:
            final: FinalEvent | None = None
            try:
                while final is None:
                    try:
                        async with asyncio.timeout_at(deadline):
                            event = await anext(agent)
                    except StopAsyncIteration:
                        final = self._fail("internal", "the agent ended without a final answer")
                        break
                    self._collected.add(event)
                    if isinstance(event, FinalEvent):
                        final = event
                    else:
                        yield event
            except TimeoutError:
                final = self._fail("timeout", f"the run's deadline of {self._timeout_s:g} s passed")
            except LLMError as exc:
                # The client gets a stable reason; what the endpoint said (its address, its
                # body) is for the operator's log only.
                log.error("LLM backend failed", reason=exc.reason, error=str(exc))
                final = self._fail("llm", f"{exc.public} ({exc.reason})", reason=exc.reason)
            except Exception as exc:
                log.exception("run failed", run_id=self.run_id)
                final = self._fail("internal", f"internal error: {type(exc).__name__}")
            # Stored before the final event goes out, so that it can say whether it was.
            await self._end()
            yield final
        finally:
            self._metrics.in_flight.dec()
            await self._end()  # a client that went away: stored all the same

    async def _end(self) -> None:
        if self._ended is not None:
            return
        self._ended = time.monotonic()  # one duration for the response and the store
        try:
            await _aclose(self._agent_events)
        finally:
            await asyncio.shield(self._save())

    def _fail(self, failure: str, message: str, **details: str) -> FinalEvent:
        self.failure = failure
        partial = self._collected.final
        status: RunStatus = "timeout" if failure == "timeout" else "error"
        final = FinalEvent(
            status,
            None,
            usage=partial.usage if partial else LLMUsage(),
            error=message,
            details={"failure": failure, **details},
        )
        self._collected.final = final
        return final

    @property
    def response(self) -> AskResponse:
        final = self._collected.final
        if final is None:  # the client went away before the run ended
            final = FinalEvent("error", None, error="the client disconnected before the end")
        return AskResponse(
            run_id=self.run_id,
            status=final.status,
            answer=final.answer,
            steps=self._collected.ordered(),
            usage=Usage(
                prompt_tokens=final.usage.prompt_tokens,
                completion_tokens=final.usage.completion_tokens,
                llm_calls=final.llm_calls,
            ),
            duration_ms=round(((self._ended or time.monotonic()) - self._started) * 1000, 1),
            mode=self.mode,
            error=final.error,
            details=final.details,
            stored=self.store_error is None,
            store_error=self.store_error,
        )

    async def _save(self) -> None:
        response = self.response
        try:
            await self._store.finish(
                self.run_id,
                status=response.status,
                answer=response.answer,
                error=response.error,
                steps=[s.model_dump() for s in response.steps],
                usage=response.usage.model_dump(),
                details=_jsonable(response.details),
                duration_ms=response.duration_ms,
            )
        except StoreUnavailable as exc:
            self.store_error = f"the run could not be stored: {exc}"
            log.error("could not store run", run_id=self.run_id, error=str(exc))
        except Exception as exc:
            self.store_error = f"the run could not be stored ({type(exc).__name__})"
            log.exception("could not store run", run_id=self.run_id)
        self._metrics.observe_run(self.mode, response)
        log.info(
            "run ended",
            run_id=self.run_id,
            mode=self.mode,
            status=response.status,
            steps=len(response.steps),
            llm_calls=response.usage.llm_calls,
            duration_ms=response.duration_ms,
        )


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(value, default=str)))


async def _aclose(agent: AsyncIterator[StepEvent]) -> None:
    aclose = getattr(agent, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("agent did not close cleanly")
