"""Voting over k samples on a backend that serves one generation at a time (the embedded
model): the greedy sample goes first, and the run stops drawing once the vote is decided."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from agents.llm.base import LLM, ChatMessage, Completion
from agents.pal import PalOptions, run_pal
from tests.agents.pal.conftest import FakeSandbox, NoN, collect, fenced, program
from tests.fakes import FakeOpenAI, FakeRequest, make_llm

QUESTION = "Olga has 3 boxes of 4 pens. How many pens does she have?"


class Serial(NoN):
    """A backend without ``n`` that serves one call at a time, in arrival order, as the
    embedded model does; ``cancelled`` counts calls abandoned while queued or generating."""

    def __init__(self, inner: LLM) -> None:
        super().__init__(inner)
        self.lock = asyncio.Lock()
        self.cancelled = 0

    async def complete(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Completion:
        try:
            async with self.lock:
                return await super().complete(messages, **kwargs)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def answers(*values: str) -> Callable[[FakeRequest], str]:
    """A script answering the draws in arrival order (greedy first), then repeating the last."""
    replies = iter(values)
    last = values[-1]

    def script(request: FakeRequest) -> str:
        nonlocal last
        last = next(replies, last)
        return fenced(program(last))

    return script


async def test_three_agreeing_samples_of_five_end_the_run() -> None:
    fake = FakeOpenAI(answers("7", "7", "7", "8", "8"), delay_s=0.05)
    llm = Serial(make_llm(fake))

    steps, final = await collect(
        run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=5))
    )

    assert final.answer == "7"
    assert final.details["drawn"] == 3 and final.details["samples"] == 5
    assert final.details["votes"] == [{"answer": "7", "count": 3}]
    assert final.details["agreement"] == 1.0
    assert final.llm_calls == 3  # the two other draws were cancelled, not paid for
    assert llm.cancelled == 2
    assert fake.calls <= 4  # the fourth may have started before the third program ran
    assert len([e for e in steps if e.__class__.__name__ == "ActionEvent"]) == 3


async def test_no_stop_while_the_leader_can_still_be_caught() -> None:
    """7, 7 then 8, 8, 8: after two votes the three pending ones could still win, and do."""
    fake = FakeOpenAI(answers("7", "7", "8", "8", "8"), delay_s=0.01)
    llm = Serial(make_llm(fake))

    _, final = await collect(
        run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=5))
    )

    assert final.answer == "8" and final.details["drawn"] == 5
    assert final.details["votes"] == [{"answer": "8", "count": 3}, {"answer": "7", "count": 2}]
    assert final.llm_calls == 5 and llm.cancelled == 0


async def test_a_sample_being_repaired_is_still_pending() -> None:
    """The greedy program fails and the sampled one says 7: 1 to nothing, but the failing
    sample's repair could still tie it, so the run waits for it; it says 9, and the tie
    goes to the greedy sample's (repaired) answer."""

    def script(request: FakeRequest) -> str:
        if "Your program failed with:" in str(request.messages[-1]["content"]):
            return fenced(program("9"))
        return fenced(program("1 / 0" if request.temperature == 0.0 else "7"))

    fake = FakeOpenAI(script, delay_s=0.01)
    llm = Serial(make_llm(fake))

    _, final = await collect(
        run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=2))
    )

    assert final.details["repairs"] == 1 and final.details["drawn"] == 2
    assert final.answer == "9" and final.details["tie"] is True  # the greedy sample's repair


@pytest.mark.parametrize("k", [1, 3])
async def test_the_greedy_sample_is_drawn_first(k: int) -> None:
    fake = FakeOpenAI(lambda request: fenced(program("12")))
    llm = Serial(make_llm(fake))
    await collect(run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=k)))
    temperatures = [request.temperature for request in fake.chat_requests]
    assert temperatures[0] == 0.0 and all(t == 0.7 for t in temperatures[1:])
    assert len(temperatures) <= k
