"""run_pal streams each sample's step as it ends, not after every sample is done.

Order is forced with ``asyncio.Event`` gates, never with sleeps: a gated sandbox run or LLM
call waits until the test opens its gate, so "sample 2 is seen while sample 1 still runs" is
checked while sample 1 provably still runs. ``GUARD_S`` only turns a regression (which would
wait for the gate forever) into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import pytest

from agents.errors import LLMServerError
from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent
from agents.llm.base import LLM, ChatMessage, Completion
from agents.pal import PalOptions, run_pal
from tests.agents.pal.conftest import FakeSandbox, NoN, collect, fenced, program
from tests.fakes import FakeOpenAI, FakeRequest, make_llm
from tools.sandbox.result import ExecutionResult

QUESTION = "Olga has 3 boxes of 4 pens. How many pens does she have?"
GUARD_S = 5.0
SLOW = program("111")  # the gated sample
FAST = program("222")


class GatedSandbox(FakeSandbox):
    """A ``FakeSandbox`` whose runs of programs containing ``marker`` wait for ``gate``."""

    def __init__(self, marker: str = "111") -> None:
        super().__init__(delay_s=0)
        self.marker = marker
        self.gate = asyncio.Event()
        self.started = asyncio.Event()  # a gated run is waiting
        self.blocked = 0  # gated runs waiting now
        self.ended: list[str] = []  # programs whose run has returned, in that order

    async def run(self, code: str, *, timeout_s: float | None = None) -> ExecutionResult:
        if self.marker in code:
            self.blocked += 1
            self.started.set()
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            finally:
                self.blocked -= 1
        result = await super().run(code, timeout_s=timeout_s)
        self.ended.append(code)
        return result


class GatedNoN(NoN):
    """A backend without ``n`` whose call number ``gated`` (from 0) waits for ``gate``, and
    whose call number ``failing`` raises an ``LLMServerError`` once ``gate`` is open."""

    def __init__(self, inner: LLM, *, gated: int | None = 0, failing: int | None = None) -> None:
        super().__init__(inner)
        self.gate = asyncio.Event()
        self.gated = gated
        self.failing = failing
        self.calls = 0
        self.waiting = 0  # calls held at the gate now

    async def complete(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Completion:
        call, self.calls = self.calls, self.calls + 1
        if call in {self.gated, self.failing}:
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        if call == self.failing:
            raise LLMServerError("injected: the backend broke mid-run")
        return await super().complete(messages, **kwargs)


async def until_observations(events: AsyncIterator[StepEvent], count: int = 1) -> list[StepEvent]:
    """The events up to and including the ``count``-th observation."""
    seen: list[StepEvent] = []
    async with asyncio.timeout(GUARD_S):
        while sum(isinstance(e, ObservationEvent) for e in seen) < count:
            seen.append(await anext(events))
    return seen


def numbers(events: Sequence[StepEvent]) -> list[int]:
    return [e.step for e in events if not isinstance(e, FinalEvent)]


def greedy_then(greedy: str, sampled: Any) -> Any:
    """A script: ``greedy`` for sample 0's draw (temperature 0), ``sampled`` for the rest."""
    return lambda req: greedy if req.temperature == 0.0 else sampled


async def test_a_fast_sample_is_yielded_while_a_slow_one_runs() -> None:
    """Issue: a PAL stream sent nothing but pings until all samples were done."""
    fake = FakeOpenAI(greedy_then(fenced(SLOW), fenced(FAST)))
    sandbox = GatedSandbox()
    events = run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox, options=PalOptions(samples=2))

    first = await until_observations(events)

    assert first == [ActionEvent(1, "python", FAST), ObservationEvent(1, "result: 222")]
    assert sandbox.blocked == 1 and sandbox.ended == [FAST]  # sample 1 is still running
    sandbox.gate.set()
    rest, final = await collect(events)
    assert rest == [ActionEvent(2, "python", SLOW), ObservationEvent(2, "result: 111")]
    # The vote goes by sample order, not completion order: the tie goes to the greedy sample.
    assert final.answer == "111" and final.details["tie"] is True
    assert fake.calls == 2


async def test_without_n_each_sample_draws_and_runs_on_its_own() -> None:
    fake = FakeOpenAI(lambda req: fenced(program("7")))
    llm = GatedNoN(make_llm(fake), gated=0)  # sample 1's draw hangs until the gate opens
    events = run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=2))

    first = await until_observations(events)

    assert first[-1] == ObservationEvent(1, "result: 7")
    assert llm.waiting == 1 and fake.calls == 1  # the other draw has not even been sent
    llm.gate.set()
    rest, final = await collect(events)
    assert numbers(rest) == [2, 2]
    assert final.answer == "7" and final.llm_calls == 2


async def test_a_repair_is_streamed_while_another_sample_still_runs() -> None:
    def script(req: FakeRequest) -> Any:
        if "Your program failed with:" in str(req.messages[-1]["content"]):
            return fenced(program("100 + 11"))
        return fenced(SLOW) if req.temperature == 0.0 else fenced(program("1 / 0"))

    fake = FakeOpenAI(script)
    sandbox = GatedSandbox()
    events = run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox, options=PalOptions(samples=2))

    early = await until_observations(events, count=2)

    assert numbers(early) == [1, 1, 2, 2]
    assert early[1] == ObservationEvent(1, "ZeroDivisionError: division by zero")
    assert early[3] == ObservationEvent(2, "result: 111")  # the repair, 100 + 11
    assert sandbox.blocked == 1  # sample 1 has not ended
    sandbox.gate.set()
    rest, final = await collect(events)
    assert numbers(rest) == [3, 3]
    assert final.details["votes"] == [{"answer": "111", "count": 2}]
    assert final.details["repairs"] == 1 and final.details["agreement"] == 1.0


async def test_closing_the_stream_cancels_what_still_runs() -> None:
    """A client that goes away closes the generator: the slow sample's run must not go on."""
    fake = FakeOpenAI(greedy_then(fenced(SLOW), fenced(FAST)))
    sandbox = GatedSandbox()
    events = run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox, options=PalOptions(samples=2))
    await until_observations(events)
    assert sandbox.blocked == 1

    assert isinstance(events, AsyncGenerator)
    async with asyncio.timeout(GUARD_S):
        await events.aclose()  # what the runner does when the client hangs up

    assert sandbox.cancelled == 1 and sandbox.blocked == 0


async def test_an_llm_error_in_one_sample_cancels_the_others() -> None:
    fake = FakeOpenAI(lambda req: fenced(SLOW))
    llm = GatedNoN(make_llm(fake), gated=None, failing=1)  # call 0 goes through; call 1 fails
    sandbox = GatedSandbox()
    events = run_pal(QUESTION, llm=llm, sandbox=sandbox, options=PalOptions(samples=2))
    pending = asyncio.ensure_future(collect(events))
    async with asyncio.timeout(GUARD_S):
        await sandbox.started.wait()  # sample 1's program is running
    llm.gate.set()  # now sample 2's draw fails

    with pytest.raises(LLMServerError):
        async with asyncio.timeout(GUARD_S):
            await pending

    assert sandbox.cancelled == 1 and sandbox.blocked == 0
