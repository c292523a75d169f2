"""run_pal end to end: the real OpenAI client against the scripted fake, and a fake sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.errors import LLMError, LLMTimeout
from agents.events import ActionEvent, FinalEvent, ObservationEvent, ThoughtEvent
from agents.pal import PalOptions, mode, run_pal
from agents.pal.prompt import STOP_SEQUENCES
from tests.agents.pal.conftest import Continues, FakeSandbox, NoN, collect, fenced, program
from tests.fakes import FakeOpenAI, FakeRequest, ToolCallReply, make_llm
from tools.sandbox.result import ExecutionResult

QUESTION = "Olga has 3 boxes of 4 pens. How many pens does she have?"


def last_user(request: FakeRequest) -> str:
    return str([m for m in request.messages if m["role"] == "user"][-1]["content"])


def is_repair(request: FakeRequest) -> bool:
    return "Your program failed with:" in last_user(request)


def is_verbalize(request: FakeRequest) -> bool:
    return last_user(request).startswith("Running the program gave")


def is_greedy_draw(request: FakeRequest) -> bool:
    """Sample 0's draw: greedy, one choice (a repair is greedy too, but is not a draw)."""
    return request.temperature == 0.0 and request.n == 1 and not is_repair(request)


async def test_one_sample_one_call_one_run() -> None:
    fake = FakeOpenAI([fenced(program("3 * 4"))])
    sandbox = FakeSandbox()

    steps, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox))

    assert steps == [
        ActionEvent(1, "python", program("3 * 4")),
        ObservationEvent(1, "result: 12"),
    ]
    assert final.status == "finished" and final.answer == "12"
    assert final.llm_calls == 1 and final.usage.prompt_tokens > 0
    assert final.usage.completion_tokens > 0
    assert final.details == {
        "value": 12,
        "votes": [{"answer": "12", "count": 1}],
        "agreement": 1.0,
        "samples": 1,
        "drawn": 1,
        "task": "math",
        "tie": False,
        "failed": 0,
        "repairs": 0,
        "answered_by": 1,
        "returned": [1],
    }
    sent = fake.last
    assert (sent.temperature, sent.n) == (0.0, 1)
    assert sent.stop == list(STOP_SEQUENCES)
    assert sent.messages[-1] == {"role": "user", "content": f"Q: {QUESTION}"}


async def test_exact_value_kept_and_display_rounded() -> None:
    fake = FakeOpenAI([program("0.1 + 0.2")])
    _, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))
    assert final.answer == "0.3"
    assert final.details["value"] == 0.1 + 0.2


async def test_greedy_sample_and_k_minus_1_in_one_call_with_n_then_majority_vote() -> None:
    sampled: list[str | ToolCallReply] = [
        fenced(program("13")),
        fenced(program("12")),
        fenced(program("1 / 0")),
        "I think the answer is 12.",  # no program: does not vote
    ]
    fake = FakeOpenAI(lambda req: fenced(program("13.0")) if is_greedy_draw(req) else sampled)
    sandbox = FakeSandbox(delay_s=0.05)
    options = PalOptions(samples=5, temperature=0.8, max_repairs=0)  # the vote alone

    steps, final = await collect(
        run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox, options=options)
    )

    assert fake.calls == 2
    assert sorted((r.n, r.temperature) for r in fake.chat_requests) == [(1, 0.0), (4, 0.8)]
    assert sandbox.max_in_flight >= 3  # the sampled programs ran concurrently
    assert final.status == "finished" and final.answer == "13"
    assert final.details["value"] == 13.0  # the greedy sample's exact value: it voted first
    assert final.details["votes"] == [{"answer": "13", "count": 2}, {"answer": "12", "count": 1}]
    assert final.details["agreement"] == 0.4 and final.details["drawn"] == 5
    assert final.details["failed"] == 2 and final.details["repairs"] == 0
    assert final.llm_calls == 2
    # Steps go out in completion order, numbered as they end: the completion without a
    # program needs no sandbox run, so it ends first.
    numbers = [e.step for e in steps if isinstance(e, ActionEvent | ObservationEvent)]
    assert numbers == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert steps[:2] == [
        ActionEvent(1, None, "I think the answer is 12."),
        ObservationEvent(1, "no Python program found in the completion", refused=True),
    ]
    texts = {e.text for e in steps if isinstance(e, ObservationEvent)}
    assert "ZeroDivisionError: division by zero" in texts


async def test_a_server_that_ignores_n_is_counted_and_then_drawn_per_sample() -> None:
    """Pass EZ: llama-cpp-python answered ``n=4`` with one choice; the three draws that topped
    it up were one call to the run (``llm_calls: 2`` for five requests). The next run draws
    each sample itself."""
    fake = FakeOpenAI(lambda req: fenced(program("7")), honour_n=False)
    llm = make_llm(fake)
    options = PalOptions(samples=5, max_repairs=0)
    _, first = await collect(run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=options))
    assert first.llm_calls == fake.calls == 5
    assert sorted(r.n for r in fake.chat_requests) == [1, 1, 1, 1, 4]
    _, second = await collect(run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=options))
    assert second.llm_calls == fake.calls - 5 == 5
    assert all(r.n == 1 for r in fake.chat_requests[5:])


async def test_each_result_is_read_once_for_the_votes_and_displayed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A vote is taken after every step: each sample's result was serialised for every pair
    compared, and every answer displayed, at every vote, in the event loop (red-team pass FB:
    8 samples of 10,000 floats held it for a second at a time, 3.6 s a run)."""
    from agents.pal import vote

    read: list[object] = []
    shown: list[object] = []
    key, display = vote._key, vote.format_answer
    monkeypatch.setattr(vote, "_key", lambda value: read.append(value) or key(value))
    monkeypatch.setattr(vote, "format_answer", lambda value: shown.append(value) or display(value))
    fake = FakeOpenAI(lambda req: fenced(program(f"[1, 2, {3 if req.temperature else 4}]")))
    options = PalOptions(samples=5, max_repairs=0)
    _, final = await collect(
        run_pal(QUESTION, llm=NoN(make_llm(fake)), sandbox=FakeSandbox(), options=options)
    )
    assert final.answer == "[1, 2, 3]" and final.details["drawn"] >= 4  # then decided
    assert len(read) == final.details["drawn"]  # once a sample, however many votes and pairs
    assert len(shown) == 3  # each answer once (the winner twice: its detail and the answer)


async def test_k_concurrent_calls_when_the_backend_has_no_n() -> None:
    """Two sampled programs that agree outvote the greedy one."""
    fake = FakeOpenAI(
        lambda req: fenced(program("8" if req.temperature == 0.0 else "7")), delay_s=0.3
    )
    llm = NoN(make_llm(fake))
    options = PalOptions(samples=3)

    loop = asyncio.get_running_loop()
    started = loop.time()
    _, final = await collect(run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=options))
    elapsed = loop.time() - started

    assert fake.calls == 3 and all(r.n == 1 for r in fake.chat_requests)
    assert sorted(r.temperature for r in fake.chat_requests) == [0.0, 0.7, 0.7]
    assert elapsed < 0.75  # concurrent: 3 x 300 ms in a row would be 0.9 s
    assert final.answer == "7" and final.details["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert final.llm_calls == 3


@pytest.mark.parametrize("k", [2, 3])
async def test_a_tie_goes_to_the_greedy_sample_and_is_reported(k: int) -> None:
    """Sampled programs must outvote the greedy one, not merely match it: with every sample
    disagreeing, the answer is what k=1 would have answered."""
    sampled = iter(range(100, 100 + k))
    fake = FakeOpenAI(
        lambda req: program("5") if req.temperature == 0.0 else program(str(next(sampled)))
    )
    llm = NoN(make_llm(fake))
    _, final = await collect(
        run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=k))
    )
    assert final.answer == "5" and final.details["tie"] is True
    assert final.details["agreement"] == pytest.approx(1 / k, abs=1e-4)


async def test_failed_program_is_repaired_once() -> None:
    def script(req: FakeRequest) -> str:
        if is_repair(req):
            assert "ZeroDivisionError: division by zero" in last_user(req)
            assert f"The question was: {QUESTION}" in last_user(req)
            assert req.messages[-2]["role"] == "assistant"
            assert "boxes / 0" in req.messages[-2]["content"]
            assert req.temperature == 0.0
            return fenced(program("3 * 4"))
        return fenced(program("boxes / 0").replace("    result", "    boxes = 3\n    result"))

    fake = FakeOpenAI(script)
    steps, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))

    assert final.status == "finished" and final.answer == "12"
    assert final.llm_calls == 2 and fake.calls == 2
    assert final.details["repairs"] == 1 and final.details["failed"] == 0  # repaired
    assert [type(e).__name__ for e in steps] == ["ActionEvent", "ObservationEvent"] * 2
    assert [e.step for e in steps if not isinstance(e, FinalEvent)] == [1, 1, 2, 2]
    assert isinstance(steps[1], ObservationEvent) and "ZeroDivisionError" in steps[1].text


async def test_repair_that_fails_too_ends_with_a_clear_error() -> None:
    fake = FakeOpenAI(lambda req: fenced(program("undefined_name + 1")))
    steps, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))

    assert final.status == "error" and final.answer is None
    assert final.error is not None
    assert final.error.startswith("every program failed (1 sampled program and 1 repair attempt)")
    assert "NameError" in final.error
    assert final.llm_calls == 2 and final.details["votes"] == [] and final.details["value"] is None
    assert len([e for e in steps if isinstance(e, ActionEvent)]) == 2


async def test_no_repair_when_disabled() -> None:
    fake = FakeOpenAI(lambda req: fenced(program("1 / 0")))
    _, final = await collect(
        run_pal(
            QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=PalOptions(max_repairs=0)
        )
    )
    assert final.status == "error" and fake.calls == 1
    assert final.error == (
        "every program failed (1 sampled program); last error: ZeroDivisionError: division by zero"
    )


async def test_repair_request_restates_the_question() -> None:
    """Issue: the repair turn lost the question, and the model wrote the repair instruction
    into its docstring and took a date from the exemplars. The last user turn, the one a
    small model reads, must hold the question itself."""
    fake = FakeOpenAI(lambda req: program("3 * 4") if is_repair(req) else program("1 / 0"))
    await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))

    (repair,) = [r for r in fake.chat_requests if is_repair(r)]
    assert QUESTION in last_user(repair)
    assert repair.messages[-1]["role"] == "user"


async def test_every_failing_sample_gets_its_own_repair() -> None:
    # Three different answers, so that no early stop can cut a repair short.
    repairs = {"1 / 0": "12", "no code here": "13", "[][1]": "14"}

    def script(req: FakeRequest) -> Any:
        if is_repair(req):
            attempt = str(req.messages[-2]["content"])
            return fenced(program(next(v for k, v in repairs.items() if k in attempt)))
        if is_greedy_draw(req):
            return fenced(program("1 / 0"))
        return ["no code here", fenced(program("[][1]"))]

    fake = FakeOpenAI(script)
    _, final = await collect(
        run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=PalOptions(samples=3))
    )
    # The greedy draw and the n=2 draw, then one repair each.
    assert fake.calls == 5 and final.llm_calls == 5
    assert all(r.n == 1 and r.temperature == 0.0 for r in fake.chat_requests if is_repair(r))
    assert final.answer == "12"  # the three-way tie goes to the greedy sample
    assert final.details["votes"] == [
        {"answer": "12", "count": 1},
        {"answer": "13", "count": 1},
        {"answer": "14", "count": 1},
    ]
    assert final.details["agreement"] == pytest.approx(1 / 3, abs=1e-4)  # over the k samples
    assert final.details["repairs"] == 3 and final.details["failed"] == 0


async def test_a_failing_sample_among_k_is_repaired_and_votes() -> None:
    """Issue: with samples > 1 a failing sample was never repaired (repairs: 0 with one
    NameError). Unrepaired, 12 and 13 tie and 12 wins; the repaired sample votes 13."""
    broken = program("undefined_name + 1")

    def script(req: FakeRequest) -> Any:
        if is_repair(req):
            return fenced(program("13"))
        if is_greedy_draw(req):
            return fenced(program("12"))
        return [fenced(broken), fenced(program("13"))]

    fake = FakeOpenAI(script)
    steps, final = await collect(
        run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=PalOptions(samples=3))
    )

    (repair,) = [r for r in fake.chat_requests if is_repair(r)]
    assert repair.messages[-2] == {"role": "assistant", "content": fenced(broken).rstrip()}
    assert "NameError: name 'undefined_name' is not defined" in last_user(repair)
    assert QUESTION in last_user(repair)
    assert (repair.n, repair.temperature) == (1, 0.0)
    assert final.answer == "13"
    assert final.details["votes"] == [{"answer": "13", "count": 2}, {"answer": "12", "count": 1}]
    assert final.details["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert final.details["repairs"] == 1 and final.details["failed"] == 0
    assert final.llm_calls == 3  # the greedy draw, the n=2 draw, the repair
    actions = [e for e in steps if isinstance(e, ActionEvent)]
    assert [a.step for a in actions] == [1, 2, 3, 4]
    assert actions[-1] == ActionEvent(4, "python", program("13"))  # the repair ends last


async def test_repairs_per_sample_are_bounded() -> None:
    fake = FakeOpenAI(
        lambda req: fenced(program("1 / 0")) if is_repair(req) else [program("1 / 0")]
    )
    _, final = await collect(
        run_pal(
            QUESTION,
            llm=make_llm(fake),
            sandbox=FakeSandbox(),
            options=PalOptions(samples=2, max_repairs=2),
        )
    )
    assert final.status == "error" and final.details["repairs"] == 4  # 2 samples x 2 rounds
    assert final.llm_calls == 6 and final.details["failed"] == 2
    assert final.error is not None
    assert final.error.startswith("every program failed (2 sampled programs and 4 repair")
    # Repair turns per request: a draw none, a first round one, a second the whole history.
    rounds = sorted(sum(map(is_repair_turn, r.messages)) for r in fake.chat_requests)
    assert rounds == [0, 0, 1, 1, 2, 2]


def is_repair_turn(message: dict[str, Any]) -> bool:
    return message["role"] == "user" and "Your program failed with:" in message["content"]


async def test_completion_without_code_is_repaired() -> None:
    def script(req: FakeRequest) -> str:
        if is_repair(req):
            assert "no Python program found" in last_user(req)
            assert req.messages[-2]["content"] == "The answer is twelve."
            return program("12")
        return "The answer is twelve."

    fake = FakeOpenAI(script)
    steps, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))
    assert steps[0] == ActionEvent(1, None, "The answer is twelve.")
    assert final.answer == "12"


async def test_program_without_result_is_a_failure() -> None:
    fake = FakeOpenAI(["x = 5\n", program("5")])
    steps, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))
    assert isinstance(steps[1], ObservationEvent) and "produced no result" in steps[1].text
    assert final.answer == "5" and final.details["repairs"] == 1


async def test_prose_before_the_program_becomes_a_thought() -> None:
    fake = FakeOpenAI(["Multiply boxes by pens.\n" + fenced(program("3 * 4"))])
    steps, _ = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))
    assert steps[0] == ThoughtEvent(1, "Multiply boxes by pens.")


async def test_verbalize_keeps_the_sentence_and_the_exact_value() -> None:
    def script(req: FakeRequest) -> str:
        if is_verbalize(req):
            assert "Running the program gave: 12" in last_user(req)
            assert "3 * 4" in req.messages[-2]["content"]
            return "Olga has 12 pens.\n\nExtra chatter."
        return fenced(program("3 * 4"))

    fake = FakeOpenAI(script)
    _, final = await collect(
        run_pal(
            QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=PalOptions(verbalize=True)
        )
    )
    assert final.answer == "Olga has 12 pens."
    assert final.details["value"] == 12 and final.details["sentence"] == "Olga has 12 pens."
    assert final.llm_calls == 2


async def test_verbalize_accepts_formatted_numbers() -> None:
    def script(req: FakeRequest) -> str:
        return "She owes $1,250.50 in total." if is_verbalize(req) else program("1250.5")

    fake = FakeOpenAI(script)
    _, final = await collect(
        run_pal(
            QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=PalOptions(verbalize=True)
        )
    )
    assert final.answer == "She owes $1,250.50 in total."


@pytest.mark.parametrize("sentence", ["Olga has 13 pens.", "Olga has a dozen pens.", ""])
async def test_verbalize_cannot_change_the_number(sentence: str) -> None:
    def script(req: FakeRequest) -> str:
        return sentence if is_verbalize(req) else program("3 * 4")

    fake = FakeOpenAI(script)
    _, final = await collect(
        run_pal(
            QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=PalOptions(verbalize=True)
        )
    )
    assert final.answer == "12"
    assert final.details["verbalize_fallback"] is True


async def test_verbalize_string_answers() -> None:
    def script(req: FakeRequest) -> str:
        if is_verbalize(req):
            return "The subscription ends on a Wednesday."
        return program("'Wednesday'")

    fake = FakeOpenAI(script)
    options = PalOptions(verbalize=True, task="date")
    _, final = await collect(
        run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=options)
    )
    assert final.answer == "The subscription ends on a Wednesday."
    assert final.details["task"] == "date"
    assert "datetime" in fake.chat_requests[0].messages[0]["content"]


async def test_llm_error_propagates() -> None:
    fake = FakeOpenAI([program("1")])
    fake.fail("401")
    with pytest.raises(LLMError):
        await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))


async def test_llm_error_during_repair_propagates() -> None:
    fake = FakeOpenAI(lambda req: program("1 / 0"))
    sandbox = FakeSandbox()
    events = run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox)
    seen = [await anext(events), await anext(events)]  # the failed sample's step
    assert isinstance(seen[1], ObservationEvent)
    fake.fail("400")
    with pytest.raises(LLMError):
        await anext(events)


async def test_deadline_cancels_cleanly_while_programs_run() -> None:
    fake = FakeOpenAI(lambda req: [program("1"), program("2"), program("3")])
    sandbox = FakeSandbox(delay_s=10)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await collect(
                run_pal(
                    QUESTION, llm=make_llm(fake), sandbox=sandbox, options=PalOptions(samples=3)
                )
            )
    assert sandbox.cancelled == 3 and sandbox.in_flight == 0


async def test_deadline_cancels_a_hanging_llm() -> None:
    fake = FakeOpenAI([program("1")])
    fake.fail("hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox()))


async def test_a_sandbox_that_raises_is_an_observation() -> None:
    class Broken:
        async def run(self, code: str, *, timeout_s: float | None = None) -> ExecutionResult:
            raise RuntimeError("worker pool is gone")

    fake = FakeOpenAI(lambda req: program("1"))
    steps, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=Broken()))
    assert isinstance(steps[1], ObservationEvent)
    assert steps[1].text == "RuntimeError: worker pool is gone"
    assert final.status == "error" and "worker pool is gone" in (final.error or "")


async def test_a_full_sandbox_is_waited_for_not_repaired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Busy is the sandbox's state, not the program's fault: the program is sent again after
    a pause, a bounded number of times, and never shown to the model as a failure to repair."""
    monkeypatch.setattr(mode, "_BUSY_PAUSES_S", (0.0, 0.0))
    busy = ExecutionResult(ok=False, error_kind="SandboxBusy", error="busy", limit="busy")

    class Full(FakeSandbox):
        def __init__(self, refusals: int) -> None:
            super().__init__()
            self.refusals = refusals

        async def run(self, code: str, *, timeout_s: float | None = None) -> ExecutionResult:
            if self.refusals:
                self.refusals -= 1
                self.programs.append(code)
                return busy
            return await super().run(code, timeout_s=timeout_s)

    fake = FakeOpenAI(lambda req: program("6 * 7"))
    sandbox = Full(refusals=2)
    _, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox))
    assert final.answer == "42" and len(sandbox.programs) == 3 and fake.calls == 1

    fake = FakeOpenAI(lambda req: program("6 * 7"))
    sandbox = Full(refusals=10)
    _, final = await collect(run_pal(QUESTION, llm=make_llm(fake), sandbox=sandbox))
    assert final.status == "error" and len(sandbox.programs) == 3
    assert fake.calls == 1, "a busy sandbox was shown to the model as a program to repair"


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="samples"):
        PalOptions(samples=0)
    with pytest.raises(ValueError, match="unknown PAL task"):
        PalOptions(task="poetry")
    with pytest.raises(ValueError, match="max_repairs"):
        PalOptions(max_repairs=-1)


async def test_a_backend_that_continues_replies_is_given_the_program_header() -> None:
    """It reads the fence, def solution() and the restated question instead of writing them;
    the program that runs is the whole reply."""
    whole = program("3 * 4", doc=QUESTION)
    fake = FakeOpenAI([fenced(whole)])
    llm = Continues(make_llm(fake))
    sandbox = FakeSandbox()

    steps, final = await collect(run_pal(QUESTION, llm=llm, sandbox=sandbox))

    assert llm.starts == [f'```python\ndef solution():\n    """{QUESTION.removesuffix("?")}']
    assert fake.last.messages[-1] == {"role": "user", "content": f"Q: {QUESTION}"}
    assert steps[0] == ActionEvent(1, "python", whole)
    assert sandbox.programs == [whole]
    assert final.answer == "12"


async def test_samples_and_repairs_are_given_the_header_too() -> None:
    broken = program("1 / 0", doc=QUESTION)
    fixed = program("3 * 4", doc=QUESTION)

    kinds: list[str] = []

    def script(request: FakeRequest) -> str:
        kinds.append(
            "repair" if is_repair(request) else "sample" if request.temperature else "greedy"
        )
        return fenced(fixed if is_repair(request) else broken)  # only repairs succeed

    llm = Continues(make_llm(FakeOpenAI(script)))
    _, final = await collect(
        run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=3))
    )
    assert final.answer == "12"
    # Every first program fails, so repairs are asked for; how many calls run before the vote
    # is decided depends on which finishes first (it stops once decided).
    assert {"greedy", "repair", "sample"} <= set(kinds)
    assert len(llm.starts) == len(kinds) and len(set(llm.starts)) == 1 and llm.starts[0]


class TimesOut(NoN):
    """A backend whose calls numbered in ``failing`` outlive their time limit."""

    def __init__(self, inner: Any, failing: set[int]) -> None:
        super().__init__(inner)
        self.failing = failing
        self.calls = 0

    async def complete(self, messages: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls in self.failing:
            raise LLMTimeout("the local model generated for over 300 s")
        return await super().complete(messages, **kwargs)


async def test_a_sample_whose_generation_times_out_votes_nothing_and_the_others_decide() -> None:
    fake = FakeOpenAI(lambda request: fenced(program("3 * 4")))
    llm = TimesOut(make_llm(fake), failing={2})
    steps, final = await collect(
        run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=3))
    )
    assert final.status == "finished" and final.answer == "12"
    assert final.details["votes"] == [{"answer": "12", "count": 2}]
    assert final.details["failed"] == 1 and final.details["repairs"] == 0  # not repaired
    failed = [e for e in steps if isinstance(e, ObservationEvent) and "model failed" in e.text]
    assert len(failed) == 1 and "300 s" in failed[0].text
    assert llm.calls == 3


async def test_when_every_sample_times_out_the_error_propagates() -> None:
    llm = TimesOut(make_llm(FakeOpenAI(lambda request: fenced(program("1")))), {1, 2, 3})
    with pytest.raises(LLMTimeout):
        await collect(
            run_pal(QUESTION, llm=llm, sandbox=FakeSandbox(), options=PalOptions(samples=3))
        )


async def test_with_one_sample_a_timeout_propagates() -> None:
    llm = TimesOut(make_llm(FakeOpenAI(lambda request: fenced(program("1")))), {1})
    with pytest.raises(LLMTimeout):
        await collect(run_pal(QUESTION, llm=llm, sandbox=FakeSandbox()))


async def test_long_results_are_cut_in_steps_and_votes_but_not_in_the_value() -> None:
    """Red-team pass DB: eight samples each answering 60,000 characters made a 1.5 MB
    response and 4 MB of store a run (PAL kept observations whole; ReAct cuts them)."""
    fake = FakeOpenAI([fenced(program("'x' * 60000")), fenced(program("'y' * 60000"))])
    steps, final = await collect(
        run_pal(QUESTION, llm=make_llm(fake), sandbox=FakeSandbox(), options=PalOptions(samples=2))
    )
    observations = [s.text for s in steps if isinstance(s, ObservationEvent)]
    assert len(observations) == 2
    assert all(len(text) < 4100 and "[... truncated" in text for text in observations)
    assert all(len(vote["answer"]) < 4100 for vote in final.details["votes"])
    assert len(final.details["value"]) == 60000
