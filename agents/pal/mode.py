"""PAL mode: the model writes a program, the sandbox computes the answer.

One run, as ``run_pal`` yields it:

1. **Draw** ``samples`` programs: one call with ``n=k`` when the backend ``supports_n`` (any
   missing choices are drawn concurrently), else k concurrent calls. k=1 is greedy
   (temperature 0); k>1 samples at ``options.temperature``.
2. **Run** every extracted program in the sandbox, concurrently. Each sample is one step:
   ``ActionEvent(step, "python", program)`` then ``ObservationEvent(step, output or error)``
   (``ActionEvent(step, None, completion)`` and a refused observation when the completion held
   no program; a ``ThoughtEvent`` first when the model wrote prose before its code).
3. **Repair**, only when *every* sample failed: the first failing program and its error go
   back to the model, which writes a corrected program (temperature 0, one call), run as one
   more step; at most ``max_repairs`` such rounds. With k>1 a partial failure costs nothing:
   failed samples just do not vote. So a run makes at most 1 + max_repairs (+1 verbalize)
   LLM requests whatever k is, plus k-1 when the backend cannot do ``n``.
4. **Vote** (``agents.pal.vote``) and format the winner (``agents.pal.format``). Failed
   samples do not vote; ``agreement`` is the winner's votes over every program drawn, repair
   attempts included (k=3 all failing, then a working repair: 1/4).
5. **Verbalize** (optional): the winning program and its result go back to the model, which
   answers in one sentence; a sentence that does not state the computed result is replaced
   by the result itself (the model must not be able to get the number wrong).
6. Exactly one ``FinalEvent``, last: ``finished`` with the answer, or ``error`` when every
   program failed. ``details`` holds ``value`` (exact), ``votes``, ``agreement``, ``samples``,
   ``task``, ``tie``, ``failed`` and ``repairs`` (and ``sentence`` when verbalized).

Errors: an ``LLMError`` from the backend **propagates** (as in the ReAct loop; the service maps
it to 502). Nothing the generated code does can end the run: sandbox failures, and even a
sandbox that raises, become observations. Deadlines are the caller's (``asyncio.timeout``);
``CancelledError`` is never caught, and pending LLM calls and sandbox runs are cancelled with
the run.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.aio import gather_or_cancel
from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent, ThoughtEvent
from agents.llm.base import LLM, ChatMessage, Usage
from agents.pal.extract import extract_program
from agents.pal.prompt import (
    DEFAULT_TASK,
    STOP_SEQUENCES,
    build_messages,
    fence,
    load_family,
    repair_turns,
    verbalize_turns,
)
from agents.pal.vote import VoteResult, agrees, as_number, majority_vote
from tools.sandbox.result import ExecutionResult

NO_PROGRAM = "no Python program found in the completion"
NO_RESULT = (
    "the program ran but produced no result: define solution() and return the answer "
    "(or assign it to `result`)"
)


class PalSandbox(Protocol):
    """What PAL needs from the sandbox (``tools.sandbox.Sandbox`` implements it)."""

    async def run(self, code: str, *, timeout_s: float | None = None) -> ExecutionResult: ...


@dataclass(frozen=True, slots=True)
class PalOptions:
    task: str = DEFAULT_TASK  # prompt family: see agents.pal.prompt.TASKS
    samples: int = 1  # k programs to vote over; the server caps it, this takes what it gets
    verbalize: bool = False
    temperature: float = 0.7  # sampling temperature for k>1; k=1 is always greedy
    max_repairs: int = 1  # repair rounds when every sample failed; 0 disables repair
    max_tokens: int = 512  # per program
    verbalize_max_tokens: int = 96
    sandbox_timeout_s: float | None = None  # per program; None: the sandbox's default

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.max_repairs < 0:
            raise ValueError(f"max_repairs must be >= 0, got {self.max_repairs}")
        if self.max_tokens < 1 or self.verbalize_max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        load_family(self.task)  # ValueError for an unknown task, before anything runs


@dataclass(frozen=True, slots=True)
class _Sample:
    """One program's outcome. ``value`` is None unless it produced a result."""

    completion: str
    program: str | None
    result: ExecutionResult | None
    failure: str | None  # why it failed, as shown to the model
    preamble: str = ""  # prose the model wrote before its code

    @property
    def value(self) -> Any:
        return self.result.value if self.failure is None and self.result is not None else None


class _Meter:
    """LLM usage summed over every call of the run."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.calls = 0


async def run_pal(
    question: str,
    *,
    llm: LLM,
    sandbox: PalSandbox,
    options: PalOptions | None = None,
) -> AsyncIterator[StepEvent]:
    """Answer ``question`` in PAL mode; see the module docstring for what is yielded."""
    options = options or PalOptions()
    meter = _Meter()
    messages = build_messages(question, options.task)
    k = options.samples
    temperature = options.temperature if k > 1 else 0.0

    completions = await _draw(llm, messages, k, temperature, options.max_tokens, meter)
    samples = await gather_or_cancel(*(_run_sample(text, sandbox, options) for text in completions))
    step = 0
    for sample in samples:
        step += 1
        for event in _step_events(step, sample):
            yield event

    repairs = 0
    last_failed = next((s for s in samples if s.program is not None), samples[0])
    while all(s.value is None for s in samples) and repairs < options.max_repairs:
        repairs += 1
        attempt = fence(last_failed.program) if last_failed.program else last_failed.completion
        follow_up = [*messages, *repair_turns(attempt, last_failed.failure or NO_PROGRAM)]
        (text,) = await _draw(llm, follow_up, 1, 0.0, options.max_tokens, meter)
        repaired = await _run_sample(text, sandbox, options)
        step += 1
        for event in _step_events(step, repaired):
            yield event
        samples = [*samples, repaired]
        if repaired.program is not None:
            messages, last_failed = follow_up, repaired  # the next round sees the whole history

    outcome = majority_vote([s.value for s in samples])
    details: dict[str, Any] = {
        "value": None,
        "votes": outcome.as_details(),
        "agreement": outcome.agreement,
        "samples": k,
        "task": options.task,
        "tie": outcome.tie,
        "failed": sum(1 for s in samples if s.value is None),
        "repairs": repairs,
    }
    winner = outcome.winner
    if winner is None:
        yield FinalEvent(
            status="error",
            answer=None,
            usage=meter.usage,
            llm_calls=meter.calls,
            error=_failure_summary(samples, repairs),
            details=details,
        )
        return

    details["value"] = winner.value
    answer = winner.answer
    if options.verbalize:
        program = _winning_program(samples, outcome)
        sentence = await _verbalize(llm, messages, program, answer, options, meter)
        details["sentence"] = sentence
        if sentence and mentions(sentence, winner.value, answer):
            answer = sentence
        else:
            details["verbalize_fallback"] = True
    yield FinalEvent(
        status="finished",
        answer=answer,
        usage=meter.usage,
        llm_calls=meter.calls,
        details=details,
    )


async def _draw(
    llm: LLM,
    messages: Sequence[ChatMessage],
    k: int,
    temperature: float,
    max_tokens: int,
    meter: _Meter,
) -> list[str]:
    """k completion texts, in a deterministic order (choices as returned, then the rest)."""

    async def call(n: int) -> list[str]:
        completion = await llm.complete(
            messages, stop=STOP_SEQUENCES, temperature=temperature, max_tokens=max_tokens, n=n
        )
        meter.calls += 1
        meter.usage = meter.usage + completion.usage
        return [choice.text for choice in completion.choices[:n]]

    texts: list[str] = []
    if k > 1 and llm.supports_n:
        texts = await call(k)
    missing = k - len(texts)
    for batch in await gather_or_cancel(*(call(1) for _ in range(missing))):
        texts.extend(batch or [""])  # a call without choices is a sample without a program
    return texts


async def _run_sample(completion: str, sandbox: PalSandbox, options: PalOptions) -> _Sample:
    extraction = extract_program(completion)
    if extraction is None:
        return _Sample(completion, None, None, NO_PROGRAM)
    try:
        result = await sandbox.run(extraction.program, timeout_s=options.sandbox_timeout_s)
    except Exception as exc:  # a broken sandbox is an observation, never a crashed run
        result = ExecutionResult(ok=False, error_kind=type(exc).__name__, error=str(exc))
    if not result.ok:
        failure = f"{result.error_kind}: {result.error}"
    elif result.value is None:
        failure = NO_RESULT
    else:
        failure = None
    return _Sample(completion, extraction.program, result, failure, extraction.preamble)


def _step_events(step: int, sample: _Sample) -> list[StepEvent]:
    if sample.program is None:
        return [
            ActionEvent(step, None, sample.completion),
            ObservationEvent(step, NO_PROGRAM, refused=True),
        ]
    events: list[StepEvent] = []
    if sample.preamble:
        events.append(ThoughtEvent(step, sample.preamble))
    events.append(ActionEvent(step, "python", sample.program))
    assert sample.result is not None
    text = sample.result.observation()
    if sample.failure == NO_RESULT:
        text = f"{text}\n{NO_RESULT}"
    events.append(ObservationEvent(step, text))
    return events


def _winning_program(samples: Sequence[_Sample], outcome: VoteResult) -> str:
    winner = outcome.winner
    assert winner is not None
    return samples[winner.first_sample].program or ""


async def _verbalize(
    llm: LLM,
    messages: Sequence[ChatMessage],
    program: str,
    answer: str,
    options: PalOptions,
    meter: _Meter,
) -> str:
    follow_up = [*messages, *verbalize_turns(program, answer)]
    completion = await llm.complete(
        follow_up, stop=STOP_SEQUENCES, temperature=0.0, max_tokens=options.verbalize_max_tokens
    )
    meter.calls += 1
    meter.usage = meter.usage + completion.usage
    lines = [line.strip() for line in completion.text.strip().splitlines() if line.strip()]
    return lines[0].strip("`").strip() if lines else ""


_NUMBER_IN_TEXT = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def mentions(sentence: str, value: Any, answer: str) -> bool:
    """Whether ``sentence`` states the computed result (as a number, or the answer's text)."""
    number = as_number(value)
    if number is not None:
        candidates = (m.group().rstrip(".,") for m in _NUMBER_IN_TEXT.finditer(sentence))
        shown = as_number(answer)
        return any(
            agrees(candidate, number) or (shown is not None and agrees(candidate, shown))
            for candidate in candidates
        )
    return " ".join(answer.split()).casefold() in " ".join(sentence.split()).casefold()


def _failure_summary(samples: Sequence[_Sample], repairs: int) -> str:
    count = len(samples) - repairs
    last = samples[-1].failure or "unknown failure"
    repaired = f" and {repairs} repair attempt{'s' if repairs != 1 else ''}" if repairs else ""
    noun = "program" if count == 1 else "programs"
    return f"every program failed ({count} sampled {noun}{repaired}); last error: {last}"
