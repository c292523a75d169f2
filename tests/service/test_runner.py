"""RunSession on its own: the in-flight gauge counts a run from its start to its end, a
cancelled run is stored with what it had, and the duration is fixed when the run ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from agents.events import FinalEvent, StepEvent, ThoughtEvent
from service.metrics import Metrics
from service.runner import MeteredLLM, RunSession
from service.store import RunStore
from tests.fakes import FakeOpenAI, make_llm


def _agent(held: asyncio.Event) -> Callable[[MeteredLLM], Awaitable[AsyncIterator[StepEvent]]]:
    """An agent that thinks, then answers once ``held`` is set."""

    async def start(llm: MeteredLLM) -> AsyncIterator[StepEvent]:
        async def events() -> AsyncIterator[StepEvent]:
            yield ThoughtEvent(1, "thinking")
            await held.wait()
            yield FinalEvent("finished", "42")

        return events()

    return start


def _in_flight(metrics: Metrics) -> float:
    return float(metrics.in_flight._value.get())


async def _past_its_thought(session: RunSession) -> asyncio.Task[None]:
    """The run's task, once its start and its thought are out."""
    task = asyncio.create_task(session.execute())
    events = session.follow()
    await anext(events)
    await anext(events)
    return task


async def _session(
    tmp_path: Path, metrics: Metrics, held: asyncio.Event
) -> tuple[RunSession, RunStore]:
    store = RunStore(f"sqlite+aiosqlite:///{tmp_path}/runs.db")
    await store.start()
    session = RunSession(
        mode="react",
        question="q",
        start_agent=_agent(held),
        llm=make_llm(FakeOpenAI()),
        timeout_s=5,
        store=store,
        metrics=metrics,
    )
    await session.create()
    return session, store


async def test_in_flight_counts_a_run_until_it_ends(tmp_path: Path) -> None:
    metrics = Metrics()
    held = asyncio.Event()
    session, store = await _session(tmp_path, metrics, held)
    task = asyncio.create_task(session.execute())
    events = session.follow()
    assert (await anext(events))[1] == "run"
    assert (await anext(events))[1] == "thought"
    assert _in_flight(metrics) == 1.0
    held.set()
    await task
    assert _in_flight(metrics) == 0.0
    assert session.response.answer == "42"
    await store.aclose()


async def test_a_cancelled_run_is_stored_with_what_it_had(tmp_path: Path) -> None:
    metrics = Metrics()
    held = asyncio.Event()
    session, store = await _session(tmp_path, metrics, held)
    task = await _past_its_thought(session)
    session.stop("cancelled")
    task.cancel()
    await task  # a cancellation it was told about is its own end, not an error
    assert _in_flight(metrics) == 0.0
    stored = await store.get(session.run_id)
    assert stored is not None and stored["status"] == "cancelled"
    assert [step["thought"] for step in stored["steps"]] == ["thinking"]
    assert [name for _, name, _ in await store.events(session.run_id)][-1] == "final"
    await store.aclose()


async def test_duration_is_fixed_when_the_run_ends(tmp_path: Path) -> None:
    """The response and the stored run report the same duration, however late it is read."""
    held = asyncio.Event()
    held.set()
    session, store = await _session(tmp_path, Metrics(), held)
    await session.execute()
    first = session.response.duration_ms
    await asyncio.sleep(0.05)
    assert session.response.duration_ms == first
    stored = await store.get(session.run_id)
    assert stored is not None and stored["duration_ms"] == first
    await store.aclose()


async def test_a_run_cancelled_while_an_event_is_written_still_ends(tmp_path: Path) -> None:
    """Red-team pass S: a client that hung up as the thought was being written left the run
    "running" for good (its end wrote the written event's number again and was refused)."""
    held = asyncio.Event()
    session, store = await _session(tmp_path, Metrics(), held)
    writing = asyncio.Event()
    record = store.record_events

    async def slow_record(*args: object, **kwargs: object) -> None:
        writing.set()
        await asyncio.sleep(0.1)
        await record(*args, **kwargs)  # type: ignore[arg-type]

    store.record_events = slow_record  # type: ignore[method-assign]
    task = asyncio.create_task(session.execute())
    await writing.wait()  # the run's first event is being written
    session.stop("cancelled")
    task.cancel()
    await task
    stored = await store.get(session.run_id)
    assert stored is not None and stored["status"] == "cancelled", stored
    names = [name for _, name, _ in await store.events(session.run_id)]
    assert names == ["run", "final"], names
    await store.aclose()


async def test_a_second_cancel_while_the_run_ends_does_not_stop_its_end(tmp_path: Path) -> None:
    """Red-team pass S: two cancels at once left the run "running" and both callers waiting:
    the second cut the first one's end short."""
    held = asyncio.Event()
    session, store = await _session(tmp_path, Metrics(), held)
    finish = store.finish

    async def slow_finish(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(0.1)
        await finish(*args, **kwargs)  # type: ignore[arg-type]

    store.finish = slow_finish  # type: ignore[method-assign]
    task = await _past_its_thought(session)
    session.stop("cancelled")
    task.cancel()
    await asyncio.sleep(0.03)  # in its end now, writing it
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # honoured once the end is written
        await task
    assert session.done.is_set()
    stored = await store.get(session.run_id)
    assert stored is not None and stored["status"] == "cancelled", stored
    await store.aclose()
