"""RunSession on its own: the in-flight gauge counts a run from its first event to its end,
whether it is read for JSON, streamed, or abandoned by a client that went away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from agents.events import FinalEvent, StepEvent, ThoughtEvent
from service.metrics import Metrics
from service.runner import RunSession
from service.store import RunStore


async def _agent() -> AsyncIterator[StepEvent]:
    yield ThoughtEvent(1, "thinking")
    yield FinalEvent("finished", "42")


def _in_flight(metrics: Metrics) -> float:
    return metrics.in_flight._value.get()


async def _session(tmp_path: Path, metrics: Metrics) -> tuple[RunSession, RunStore]:
    store = RunStore(f"sqlite+aiosqlite:///{tmp_path}/runs.db")
    await store.start()
    session = RunSession(
        mode="react",
        question="q",
        agent_events=_agent(),
        timeout_s=5,
        store=store,
        metrics=metrics,
    )
    await session.start()
    return session, store


async def test_in_flight_counts_a_run_until_it_ends(tmp_path: Path) -> None:
    metrics = Metrics()
    session, store = await _session(tmp_path, metrics)
    seen = []
    async for event in session.events():
        seen.append(_in_flight(metrics))
        assert event is not None
    assert seen == [1.0, 1.0]
    assert _in_flight(metrics) == 0.0
    await store.aclose()


async def test_in_flight_is_released_when_the_reader_goes_away(tmp_path: Path) -> None:
    metrics = Metrics()
    session, store = await _session(tmp_path, metrics)
    events = session.events()
    await anext(events)
    assert _in_flight(metrics) == 1.0
    await events.aclose()  # what sse-starlette does when the client disconnects
    assert _in_flight(metrics) == 0.0
    stored = await store.get(session.run_id)
    # Saved when the reader went away, not merely created at the start: an ended status,
    # the error, and the step seen before the client left.
    assert stored is not None and stored["status"] == "error"
    assert stored["error"] == "the client disconnected before the end"
    assert [step["thought"] for step in stored["steps"]] == ["thinking"]
    await store.aclose()


async def test_duration_is_fixed_when_the_run_ends(tmp_path: Path) -> None:
    """The response and the stored run report the same duration, however late it is read."""
    session, store = await _session(tmp_path, Metrics())
    async for _event in session.events():
        pass
    first = session.response.duration_ms
    await asyncio.sleep(0.05)
    assert session.response.duration_ms == first
    stored = await store.get(session.run_id)
    assert stored is not None and stored["duration_ms"] == first
    await store.aclose()
