"""One run, from its record to its end: deadline, cancel, error mapping, an event log that
is written as it happens, and storage.

``RunSession.execute()`` drives the agent and always ends with exactly one ``final`` event:
the agent's own, or one made here when the deadline passed (``timeout``), the LLM backend
failed (``error``, HTTP 502), the run was cancelled (``cancelled``; ``interrupted`` when the
service stops) or something unexpected broke (``error``, HTTP 500).

Every event gets the next sequence number of the run and is written to the store with the
steps and the usage so far (each LLM call adds its usage as it returns, through
``MeteredLLM``), so a run that ends early keeps its partial trace and true usage. The same
``(seq, event, data)`` triples are kept in memory while the run lives, for the clients that
follow it (``follow``): the ``/ask`` stream and ``GET /runs/{id}/events`` send exactly what
the store replays later, with the same ids. When the store fails mid-run the run goes on
and its response says so (``stored: false``); a run whose start cannot be recorded is not run
at all (``StoreUnavailable``, HTTP 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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
from agents.llm.base import LLM, ChatMessage, Completion, ToolSpec
from agents.llm.base import Usage as LLMUsage
from service.errors import ProblemError
from service.metrics import Metrics
from service.schemas import AskResponse, Step, Usage
from service.store import RunStore, StoreUnavailable, ThreadGone, storable

log = structlog.get_logger(__name__)

# Which HTTP status a non-streamed run that ended this way is answered with.
FAILURE_STATUS = {"llm": 502, "timeout": 504, "internal": 500}
Event = tuple[int, str, dict[str, Any]]  # (seq, name, data): one SSE event, one stored row
StopReason = Literal["cancelled", "interrupted"]
_WRITTEN_WITH_THE_NEXT = ("thought",)  # the action follows from the same LLM call
AgentStarter = Callable[["MeteredLLM"], Awaitable[AsyncIterator[StepEvent]]]


class MeteredLLM:
    """One run's view of the shared LLM: every call's usage is added as it returns, so a run
    that times out or is cancelled still reports what it really cost."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.usage = LLMUsage()
        self.calls = 0

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def supports_n(self) -> bool:
        return self.inner.supports_n

    @property
    def supports_tools(self) -> bool:
        return self.inner.supports_tools

    @property
    def supports_grammar(self) -> bool:
        return self.inner.supports_grammar

    @property
    def supports_prefill(self) -> bool:
        return self.inner.supports_prefill

    @property
    def supports_warm_up(self) -> bool:
        return self.inner.supports_warm_up

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        max_tokens: int = 512,
        n: int = 1,
        tools: Sequence[ToolSpec] = (),
        grammar: str | None = None,
        response_schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        completion = await self.inner.complete(
            messages,
            stop=stop,
            temperature=temperature,
            max_tokens=max_tokens,
            n=n,
            tools=tools,
            grammar=grammar,
            response_schema=response_schema,
        )
        self.calls += completion.requests
        self.usage = self.usage + completion.usage
        return completion

    async def check(self) -> None:
        await self.inner.check()

    async def warm_up(self, conversations: Sequence[Sequence[ChatMessage]]) -> int:
        return await self.inner.warm_up(conversations)

    async def aclose(self) -> None:
        """The shared client outlives the run: nothing to close."""

    def __getattr__(self, name: str) -> Any:  # optional abilities (a tokenizer) pass through
        return getattr(self.inner, name)


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
    """One run. ``create()`` records it, ``execute()`` runs it to its end (in a task of
    ``service.runs.RunManager``), ``follow()`` reads its events, ``response`` is its body."""

    def __init__(
        self,
        *,
        mode: str,
        question: str,
        start_agent: AgentStarter,
        llm: LLM,
        timeout_s: float,
        store: RunStore,
        metrics: Metrics,
        owner: str = "",
        thread_id: str | None = None,
    ) -> None:
        self.run_id = uuid.uuid4().hex
        self.mode = mode
        self.question = question
        self.owner = owner
        self.thread_id = thread_id
        self.status: str = "queued"
        self._start_agent = start_agent
        self.meter = MeteredLLM(llm)
        self._timeout_s = timeout_s
        self._store = store
        self._metrics = metrics
        self._collected = _Collected()
        self._started = time.monotonic()
        self._ended: float | None = None
        self.failure: str | None = None  # "llm" | "timeout" | "internal"
        self.store_error: str | None = None  # why the run's end could not be stored
        self.stop_reason: StopReason | None = None
        self.extra_details: dict[str, Any] = {}  # stored with the run (the memory it saw)
        self._stop_message: str | None = None
        self.log: list[Event] = []
        self._unsaved: list[Event] = []  # events whose write failed: retried with the next
        self._writing: asyncio.Future[None] | None = None  # the latest event's write
        self._changed = asyncio.Condition()
        self.done = asyncio.Event()

    async def create(self) -> None:
        """Record the run before it begins, so that it is stored whatever happens next."""
        try:
            await self._store.create(
                self.run_id,
                self.mode,
                self.question,
                owner=self.owner,
                thread_id=self.thread_id,
                status="queued",
            )
        except StoreUnavailable as exc:  # HTTP 503: nothing runs that could not be recorded
            raise StoreUnavailable(f"{exc}; the run was not started") from exc
        except ThreadGone as exc:  # deleted since the request found it
            raise ProblemError(404, f"{exc}; the run was not started") from exc

    def stop(self, reason: StopReason, message: str | None = None) -> None:
        """Say why the run's task is about to be cancelled (by ``RunManager``)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stop_message = message

    async def execute(self) -> None:
        """Run to the end, whatever happens; only the caller's own cancellation of this
        task ends it early, and then the run is stored as ``cancelled``/``interrupted``."""
        structlog.contextvars.bind_contextvars(run_id=self.run_id)
        final: FinalEvent | None = None
        agent: AsyncIterator[StepEvent] | None = None
        try:
            try:
                self._started = time.monotonic()  # the deadline counts from here
                self._metrics.in_flight.inc()
                try:
                    self.status = "running"
                    await self._publish("run", {"run_id": self.run_id, "mode": self.mode})
                    async with asyncio.timeout(self._timeout_s):
                        agent = await self._start_agent(self.meter)
                        async for given in agent:
                            event = _as_stored(given)  # what a client reads, live or later
                            self._collected.add(event)
                            if isinstance(event, FinalEvent):
                                final = event
                                break
                            await self._publish(_event_name(event), _event_data(event))
                    if final is None:
                        final = self._fail("internal", "the agent ended without an answer")
                finally:
                    self._metrics.in_flight.dec()
            except TimeoutError:
                final = self._fail("timeout", f"the run's deadline of {self._timeout_s:g} s passed")
            except LLMError as exc:
                # The client gets a stable reason; what the endpoint said (its address, its
                # body) is for the operator's log only.
                log.error("LLM backend failed", reason=exc.reason, error=str(exc))
                final = self._fail("llm", f"{exc.public} ({exc.reason})", reason=exc.reason)
            except asyncio.CancelledError:
                reason = self.stop_reason or "interrupted"
                message = self._stop_message or (
                    "the run was cancelled"
                    if reason == "cancelled"
                    else "the service stopped while this run was in progress"
                )
                final = self._end_as(reason, message)
                if self.stop_reason is None:
                    raise  # not ours: whoever cancelled us gets their cancellation back
            except Exception as exc:
                log.exception("run failed")
                final = self._fail("internal", f"internal error: {type(exc).__name__}")
        finally:
            # One task for the whole end, waited for even if this one is cancelled again while
            # it runs (two cancels at once skipped it: the run stayed "running" for good).
            ending = asyncio.ensure_future(self._end(agent, final))
            cancelled_again = False
            while not ending.done():
                try:
                    await asyncio.shield(ending)
                except asyncio.CancelledError:
                    cancelled_again = True
            ending.result()
            if cancelled_again:
                raise asyncio.CancelledError  # honoured, now that the end is written

    async def _end(self, agent: AsyncIterator[StepEvent] | None, final: FinalEvent | None) -> None:
        if agent is not None:
            await _aclose(agent)
        if final is None:
            final = self._end_as("interrupted", "the run ended without an answer")
        self._collected.final = final
        await self._finish()

    async def follow(self, after: int = 0) -> AsyncIterator[Event]:
        """The events after ``after``, then each new one until ``final``. (Sequence numbers
        are the log's positions from 1, so the events after N are ``log[N:]``.)"""
        sent = max(after, 0)
        while True:
            async with self._changed:
                while len(self.log) <= sent and not self.done.is_set():
                    await self._changed.wait()
                fresh = self.log[sent:]
            for event in fresh:
                yield event
            sent += len(fresh)
            if self.done.is_set() and sent >= len(self.log):
                return

    @property
    def response(self) -> AskResponse:
        final = self._collected.final
        if final is None:  # only read once the run has ended; a safe answer otherwise
            final = FinalEvent("interrupted", None, error="the run has not ended")
        return AskResponse(
            run_id=self.run_id,
            status=final.status,
            answer=final.answer,
            steps=self._collected.ordered(),
            usage=Usage(
                prompt_tokens=self.meter.usage.prompt_tokens,
                completion_tokens=self.meter.usage.completion_tokens,
                llm_calls=self.meter.calls,
            ),
            duration_ms=round(((self._ended or time.monotonic()) - self._started) * 1000, 1),
            mode=self.mode,
            error=final.error,
            details={**final.details, **self.extra_details},
            stored=self.store_error is None,
            store_error=self.store_error,
        )

    # -- internals ----------------------------------------------------------------------------

    async def _publish(self, name: str, data: dict[str, Any]) -> None:
        """Log the event and write it with the progress so far: the LLM call's usage as
        soon as its action is known (a step's thought is written with its action, which the
        same call produced: SQLite commits cost milliseconds each), the observation when the
        action has run, the run's start and end at once. A failed write does not stop the
        run: its events are written with the next one that succeeds, or at the end."""
        event = (len(self.log) + 1, name, data)
        if name in _WRITTEN_WITH_THE_NEXT:
            self._unsaved.append(event)
            async with self._changed:
                self.log.append(event)
                self._changed.notify_all()
            return
        # The write and what the run notes of it are one task: cancelled while it writes, the
        # run still learns what was written (its end wrote the same sequence numbers again,
        # the store refused them, and the run stayed "running" for good).
        self._writing = asyncio.ensure_future(self._write(event))
        await asyncio.shield(self._writing)

    async def _write(self, event: Event) -> None:
        try:
            await self._store.record_events(
                self.run_id,
                [*self._unsaved, event],
                status="running" if event[0] == 1 else None,
                steps=[s.model_dump() for s in self._collected.ordered()],
                usage=self._usage(),
            )
            self._unsaved.clear()
        except StoreUnavailable as exc:
            self._unsaved.append(event)
            log.warning("could not store run progress", error=str(exc))
        async with self._changed:
            self.log.append(event)
            self._changed.notify_all()

    def _usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.meter.usage.prompt_tokens,
            "completion_tokens": self.meter.usage.completion_tokens,
            "llm_calls": self.meter.calls,
        }

    def _fail(self, failure: str, message: str, **details: str) -> FinalEvent:
        self.failure = failure
        status: RunStatus = "timeout" if failure == "timeout" else "error"
        return FinalEvent(status, None, error=message, details={"failure": failure, **details})

    def _end_as(self, status: StopReason, message: str) -> FinalEvent:
        return FinalEvent(status, None, error=message)

    async def _finish_bare(self, final_seq: int, exc: Exception) -> None:
        """The run's end without its content, when the content could not be written: a run
        left ``running`` would hold its thread and its event stream for good."""
        error = f"the run's result could not be stored ({type(exc).__name__})"
        try:
            await self._store.finish(
                self.run_id,
                status="error",
                error=error,
                events=[(final_seq, "final", {"status": "error", "answer": None, "error": error})],
            )
        except StoreUnavailable as unavailable:  # the store is down: said once, no traceback
            log.error("could not store even the end of the run", error=str(unavailable))
        except Exception:
            log.exception("could not store even the end of the run")

    async def _finish(self) -> None:
        if self._writing is not None:  # a write the run's cancellation left going: its end
            with contextlib.suppress(Exception):  # is numbered after it
                await self._writing
        self._ended = time.monotonic()
        response = self.response
        self.status = response.status
        final_seq = len(self.log) + 1
        if self.store_error is None:
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
                    events=[*self._unsaved, (final_seq, "final", response.model_dump(mode="json"))],
                )
            except StoreUnavailable as exc:
                self.store_error = f"the run could not be stored: {exc}"
                log.error("could not store run", error=str(exc))
                await self._finish_bare(final_seq, exc)  # the end at least, if the store takes it
            except Exception as exc:
                self.store_error = f"the run could not be stored ({type(exc).__name__})"
                log.exception("could not store run")
                await self._finish_bare(final_seq, exc)
        body = self.response.model_dump(mode="json")  # says whether it was stored
        async with self._changed:
            self.log.append((final_seq, "final", body))
            self.done.set()
            self._changed.notify_all()
        self._metrics.observe_run(self.mode, self.response)
        log.info(
            "run ended",
            mode=self.mode,
            status=response.status,
            steps=len(response.steps),
            llm_calls=response.usage.llm_calls,
            duration_ms=response.duration_ms,
        )


def _event_name(event: StepEvent) -> str:
    names = {ThoughtEvent: "thought", ActionEvent: "action", ObservationEvent: "observation"}
    return names[type(event)]


def _as_stored(event: StepEvent) -> StepEvent:
    """``event`` with its texts and details as the store keeps them (``storable``: NUL and
    lone surrogates as U+FFFD), so that the answer a client gets live is the one it reads
    later (a program's ``'a\\x00b'`` came back as itself from ``/ask``, and as
    ``'a\\ufffdb'`` from ``/runs/{id}``: red-team pass BT)."""
    if isinstance(event, ThoughtEvent | ObservationEvent):
        return dataclasses.replace(event, text=storable(event.text))
    if isinstance(event, ActionEvent):
        return dataclasses.replace(event, action_input=storable(event.action_input))
    return dataclasses.replace(
        event,
        answer=storable(event.answer),
        error=storable(event.error),
        details=storable(event.details),
    )


def _event_data(event: StepEvent) -> dict[str, Any]:
    if isinstance(event, ThoughtEvent):
        return {"step": event.step, "thought": event.text}
    if isinstance(event, ActionEvent):
        return {"step": event.step, "action": event.action, "action_input": event.action_input}
    if isinstance(event, ObservationEvent):
        return {"step": event.step, "observation": event.text, "refused": event.refused}
    return {}


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(value, default=str)))


async def _aclose(agent: AsyncIterator[StepEvent]) -> None:
    aclose = getattr(agent, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("agent did not close cleanly")
