"""PAL mode: the model writes a program, the sandbox computes the answer.

One run, as ``run_pal`` yields it:

1. **Samples**: k = ``samples`` pipelines run concurrently, one per sample. Each draws its
   program, extracts it, runs it in the sandbox and repairs it if it failed. Sample 0 is
   always the greedy one (temperature 0, its own call): k=1 is exactly it, and with k>1 it
   is the anchor the others must outvote (ties go to it, see 4). Samples 1..k-1 are drawn at
   ``options.temperature``: when the backend ``supports_n`` (and k>2), one call with
   ``n=k-1`` draws them first and a pipeline whose choice is missing draws its own; else
   each pipeline makes its own call.
2. **Steps**, streamed: every program run (a sample's or a repair's) is one step, yielded as
   soon as it ends, in completion order: a client sees a fast sample while a slow one still
   runs, not pings until the last one is done. Step numbers are given as steps end, so they
   are unique and increase in the order yielded (step 1 is the first to end, not sample 1).
   A step is ``ActionEvent(step, "python", program)`` then ``ObservationEvent(step, output or
   error)`` (``ActionEvent(step, None, completion)`` and a refused observation when the
   completion held no program; a ``ThoughtEvent`` first when the model wrote prose before
   its code); its events go out together, never interleaved with another step's.
3. **Repair**, per sample: a sample that failed (no program, an error, or no result) sends
   its attempt and the error back to the model with the question restated
   (``agents.pal.prompt.repair_turns``); the corrected program (temperature 0, one call) runs
   as one more step, while the other samples go on. At most ``max_repairs`` rounds per
   sample; a later round sees the whole repair conversation. So a run makes at most
   k * (1 + max_repairs) LLM requests (+1 to verbalize); the ``n=k-1`` draw counts as one,
   or as the requests it took when the server ignored ``n`` (``Completion.requests``).
4. **Vote** (``agents.pal.vote``) and format the winner (``agents.pal.format``). Each sample
   votes with its final outcome: a repaired sample votes in place of its failed original; a
   sample that still fails does not vote. Samples vote in sample order (deterministic), not
   completion order, so a tie goes to the answer sample 0 (greedy) voted for, if it is in
   the tie: a sampled program must be outvoted by other sampled programs, not merely
   matched, to displace the greedy answer. **Early stop**: as soon as the leader cannot be
   caught (its votes exceed the runner-up's plus every sample still undecided), the samples
   still drawing, running or repairing are cancelled: with k=5, three agreeing programs end
   the run. On a local model, which serves one generation at a time, that saves the rest
   of the draws; the answer is the one the full vote would have given. ``agreement`` is the
   winner's votes over the samples that ended (``drawn``; a repair replaces a vote, it adds
   no voter): k=3 all failing, and only one repair working: 1/3.
5. **Verbalize** (optional): the winning program and its result go back to the model, which
   answers in one sentence; a sentence that does not state the computed result is replaced
   by the result itself (the model must not be able to get the number wrong).
6. Exactly one ``FinalEvent``, last: ``finished`` with the answer, or ``error`` when every
   sample failed. ``details`` holds ``value`` (exact), ``votes``, ``agreement``, ``samples``
   (k), ``drawn`` (samples that ended; fewer than k after an early stop), ``task``, ``tie``,
   ``failed`` (ended samples whose final outcome has no value) and ``repairs`` (repair
   attempts made), and ``sentence`` when verbalized.

Errors: an ``LLMError`` from the backend **propagates** (as in the ReAct loop; the service maps
it to 502), except that with k>1 a sample whose own call failed (``LLMTimeout``: a generation
past the time limit; ``LLMBadResponse`` other than a server error: a reply that could not be
used) votes nothing: it is a step whose observation says so, it is not repaired, and the
other samples decide; only when every sample's call failed does the first error propagate.
Nothing the generated code does can end the run: sandbox failures, and even a
sandbox that raises, become observations. Deadlines are the caller's (``asyncio.timeout``);
``CancelledError`` is never caught. Every pipeline is an asyncio task that the run cancels and
awaits when it ends early: a deadline, an ``LLMError`` in another sample, or a consumer that
closes the generator (a client that went away) leaves no LLM call or sandbox run behind.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.errors import LLMBadResponse, LLMError, LLMServerError, LLMTimeout
from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent, ThoughtEvent
from agents.llm.base import LLM, ChatMessage, Usage
from agents.memory import Memory
from agents.pal.extract import extract_program
from agents.pal.prompt import (
    DEFAULT_TASK,
    STOP_SEQUENCES,
    build_messages,
    fence,
    load_family,
    repair_turns,
    reply_start,
    verbalize_turns,
)
from agents.pal.vote import Ballot, VoteResult, agrees, as_number, ballot, majority_vote
from agents.policy import truncated
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
    temperature: float = 0.7  # for samples 1..k-1; sample 0 (and so k=1) is always greedy
    max_repairs: int = 1  # repair rounds per failing sample; 0 disables repair
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
    error: LLMError | None = None  # the model's call failed (k>1): nothing was drawn

    @property
    def value(self) -> Any:
        return self.result.value if self.failure is None and self.result is not None else None


class _Meter:
    """LLM usage summed over every call of the run."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.calls = 0


@dataclass(slots=True)
class _Lane:
    """One sample's pipeline: what votes for it, and what its next repair answers."""

    index: int  # the sample's place in the vote
    messages: list[ChatMessage]  # the conversation that produced ``shown``
    shown: _Sample | None = None  # the failed attempt the next repair shows the model
    final: _Sample | None = None  # the latest attempt: the outcome that votes
    repairs: int = 0
    ballot: Ballot | None = None  # what ``final`` votes with, made once (``vote.ballot``)

    def record(self, sample: _Sample, conversation: list[ChatMessage]) -> None:
        """A repair that held no program is not worth showing again: the next round answers
        the latest attempt that had one (or the first attempt) in its conversation."""
        self.final = sample
        self.ballot = None if sample.value is None else ballot(sample.value)
        if self.shown is None or sample.program is not None:
            self.shown, self.messages = sample, conversation

    @property
    def outcome(self) -> _Sample:
        if self.final is None:
            raise RuntimeError(f"sample {self.index} never ended")
        return self.final


_Attempt = tuple[_Sample, list[ChatMessage]]  # an attempt's outcome, and its conversation


class _Pipelines:
    """The samples of one run as asyncio tasks, one attempt (draw if needed, extract, run)
    per task, so that each step can be yielded when it ends rather than when all have."""

    def __init__(
        self,
        question: str,
        llm: LLM,
        sandbox: PalSandbox,
        options: PalOptions,
        meter: _Meter,
    ) -> None:
        self._question = question
        # Every call's reply starts the same way; a backend that continues a reply is given it.
        self._start = reply_start(question) if llm.supports_prefill else None
        self._llm = llm
        self._sandbox = sandbox
        self._options = options
        self._meter = meter
        self._running: dict[asyncio.Task[_Attempt], _Lane] = {}
        self._started: list[asyncio.Task[_Attempt]] = []  # for close(): every one, done or not

    @property
    def running(self) -> bool:
        return bool(self._running)

    @property
    def pending(self) -> int:
        """Samples whose vote is not known yet: drawing, running or being repaired."""
        return len({lane.index for lane in self._running.values()})

    async def first_draw(self, messages: list[ChatMessage]) -> list[str | None]:
        """The sampled completions (samples 1..k-1) from a single ``n=k-1`` call when the
        backend can and k>2; None for each sample its own pipeline must draw (sample 0, the
        greedy one, always; every one without ``n``)."""
        k = self._options.samples
        texts: list[str] = []
        if k > 2 and self._llm.supports_n:
            texts = await _complete(
                self._llm,
                messages,
                k - 1,
                self._options.temperature,
                self._options.max_tokens,
                self._meter,
                self._start,
            )
        return [None, *texts, *([None] * (k - 1 - len(texts)))]

    def start(self, lane: _Lane, completion: str | None) -> None:
        """The sample's first attempt, in the conversation that every sample shares: greedy
        for sample 0, sampled at the options' temperature for the others."""
        temperature = 0.0 if lane.index == 0 else self._options.temperature
        self._spawn(lane, self._attempt(lane.messages, completion, temperature))

    def repair(self, lane: _Lane) -> None:
        """One more round for a sample whose latest attempt failed, while rounds are left."""
        if lane.outcome.value is not None or lane.repairs >= self._options.max_repairs:
            return
        if lane.outcome.error is not None:
            return  # the model failed, not the program: showing it nothing would not help
        if lane.outcome.result is not None and lane.outcome.result.limit == "busy":
            return  # the sandbox was full, the program never ran: nothing for the model to fix
        shown = lane.shown or lane.outcome
        attempt = fence(shown.program) if shown.program else shown.completion
        turns = repair_turns(self._question, attempt, shown.failure or NO_PROGRAM)
        lane.repairs += 1
        self._spawn(lane, self._attempt([*lane.messages, *turns], None, 0.0))

    async def next_steps(self) -> list[tuple[_Lane, _Sample]]:
        """The attempts that end next (several when they end together: in sample order),
        each recorded in its lane. An ``LLMError`` propagates."""
        done, _ = await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
        steps: list[tuple[_Lane, _Sample]] = []
        for task in sorted(done, key=lambda t: self._running[t].index):
            lane = self._running.pop(task)
            sample, conversation = task.result()
            lane.record(sample, conversation)
            steps.append((lane, sample))
        return steps

    async def close(self) -> None:
        """Cancel whatever still runs (LLM calls, sandbox runs) and wait until it has ended;
        gathering the finished tasks too retrieves any exception nobody read."""
        for task in self._started:
            task.cancel()
        await asyncio.gather(*self._started, return_exceptions=True)
        self._running.clear()

    def _spawn(self, lane: _Lane, attempt: Coroutine[Any, Any, _Attempt]) -> None:
        task = asyncio.create_task(attempt)
        self._running[task] = lane
        self._started.append(task)

    async def _attempt(
        self, conversation: list[ChatMessage], completion: str | None, temperature: float
    ) -> _Attempt:
        if completion is None:
            try:
                texts = await _complete(
                    self._llm,
                    conversation,
                    1,
                    temperature,
                    self._options.max_tokens,
                    self._meter,
                    self._start,
                )
            except (LLMTimeout, LLMBadResponse) as exc:
                if self._options.samples == 1 or isinstance(exc, LLMServerError):
                    raise  # k=1 has no other sample; a server error is not this draw's
                failure = f"the model failed to write this sample: {exc}"
                return _Sample("", None, None, failure, error=exc), conversation
            completion = texts[0] if texts else ""  # no choice: a sample without a program
        return await _run_sample(completion, self._sandbox, self._options), conversation


async def run_pal(
    question: str,
    *,
    llm: LLM,
    sandbox: PalSandbox,
    options: PalOptions | None = None,
    memory: Memory | None = None,
    context: str | None = None,
    first_step: int = 1,
) -> AsyncIterator[StepEvent]:
    """Answer ``question`` in PAL mode; see the module docstring for what is yielded.
    ``memory`` (the thread's earlier turns, ``agents.memory``) and ``context`` (passages from
    the caller's documents) go into the question's turn, so every request of the run
    (samples, repairs, verbalize) sees them. Steps are numbered from ``first_step``."""
    options = options or PalOptions()
    meter = _Meter()
    messages = build_messages(question, options.task, memory, context)
    lanes = [_Lane(index, messages) for index in range(options.samples)]
    pipelines = _Pipelines(question, llm, sandbox, options, meter)
    step = first_step - 1
    last_step: dict[int, int] = {}  # a sample's latest step, by its place in the vote
    returned: list[int] = []  # the steps whose program returned a value
    try:
        pipelines.start(lanes[0], None)  # the greedy sample draws while the others are drawn
        completions = await pipelines.first_draw(messages)
        for lane, completion in zip(lanes[1:], completions[1:], strict=True):
            pipelines.start(lane, completion)
        while pipelines.running:
            for lane, sample in await pipelines.next_steps():
                pipelines.repair(lane)  # under way while this step goes out
                step += 1
                last_step[lane.index] = step
                if sample.value is not None:
                    returned.append(step)
                for event in _step_events(step, sample):
                    yield event
            if _vote(lanes).decided(pipelines.pending):
                break  # the rest could not change the winner: close() cancels them
    finally:
        await pipelines.close()  # a deadline, an LLMError, a consumer gone: nothing left running

    ended = [lane for lane in lanes if lane.final is not None]
    outcomes = [lane.outcome for lane in ended]
    repairs = sum(lane.repairs for lane in lanes)
    outcome = _vote(lanes)
    # Each answer displayed: 10,000 floats in each of 8 take a fifth of a second, in a
    # thread of its own, where the event loop's other runs go on meanwhile (pass FB).
    shown, winner_shown = await asyncio.to_thread(_displayed, outcome)
    details: dict[str, Any] = {
        "value": None,
        "votes": shown,
        "agreement": outcome.agreement,
        "samples": options.samples,
        "drawn": len(ended),
        "task": options.task,
        "tie": outcome.tie,
        "failed": sum(1 for s in outcomes if s.value is None),
        "repairs": repairs,
    }
    winner = outcome.winner
    if winner is None and outcomes and all(s.error is not None for s in outcomes):
        error = outcomes[0].error
        assert error is not None
        raise error  # no sample was drawn at all: the backend's failure, as with k=1
    if winner is None:
        yield FinalEvent(
            status="error",
            answer=None,
            usage=meter.usage,
            llm_calls=meter.calls,
            error=_failure_summary(outcomes, repairs),
            details=details,
        )
        return

    details["value"] = winner.value
    lane = ended[winner.first_sample]
    # which program answered, and which returned a value, by step: what a thread's next
    # question and the exports build on, never read back from an observation's text (a
    # failed program's message ended with "result: 42", red-team pass BT)
    details["answered_by"] = last_step[lane.index]
    details["returned"] = returned
    answer = winner_shown
    if options.verbalize:
        program = lane.outcome.program or ""
        sentence = await _verbalize(llm, lane.messages, program, answer, options, meter)
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


def _displayed(outcome: VoteResult) -> tuple[list[dict[str, Any]], str]:
    """The vote's details, and its winner's display string ("" without one)."""
    winner = outcome.winner
    return outcome.as_details(), "" if winner is None else winner.answer


def _vote(lanes: Sequence[_Lane]) -> VoteResult:
    """The vote of the samples that have ended so far, in sample order. A sample whose latest
    attempt failed votes nothing (``None``), and while it is being repaired it is pending."""
    ended = [lane for lane in lanes if lane.final is not None]
    return majority_vote([lane.outcome.value for lane in ended], [lane.ballot for lane in ended])


async def _complete(
    llm: LLM,
    messages: Sequence[ChatMessage],
    n: int,
    temperature: float,
    max_tokens: int,
    meter: _Meter,
    start: str | None = None,
) -> list[str]:
    """The texts of up to ``n`` choices from one call (fewer when the backend returns fewer).
    With ``start`` (``reply_start``), the model continues a reply that begins with it, and
    each text is the whole reply."""
    if start is not None:
        messages = [*messages, ChatMessage("assistant", start)]
    completion = await llm.complete(
        messages, stop=STOP_SEQUENCES, temperature=temperature, max_tokens=max_tokens, n=n
    )
    meter.calls += completion.requests
    meter.usage = meter.usage + completion.usage
    return [(start or "") + choice.text for choice in completion.choices[:n]]


_BUSY_PAUSES_S = (0.5, 1.0, 2.0)  # a program the full sandbox refused is sent again after each


async def _run_sample(completion: str, sandbox: PalSandbox, options: PalOptions) -> _Sample:
    extraction = extract_program(completion)
    if extraction is None:
        return _Sample(completion, None, None, NO_PROGRAM)
    for pause_s in (*_BUSY_PAUSES_S, None):
        try:
            result = await sandbox.run(extraction.program, timeout_s=options.sandbox_timeout_s)
        except Exception as exc:  # a broken sandbox is an observation, never a crashed run
            result = ExecutionResult(ok=False, error_kind=type(exc).__name__, error=str(exc))
        if result.limit != "busy" or pause_s is None:
            break
        await asyncio.sleep(pause_s)  # the sandbox is full: the program waits its turn again
    if not result.ok:
        failure = f"{result.error_kind}: {result.error}"
    elif result.value is None:
        failure = NO_RESULT
    else:
        failure = None
    return _Sample(completion, extraction.program, result, failure, extraction.preamble)


def _step_events(step: int, sample: _Sample) -> list[StepEvent]:
    if sample.error is not None:
        return [ActionEvent(step, None, ""), ObservationEvent(step, sample.failure or "")]
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
    # cut as ReAct's are: eight samples of 64 KB each made a 1.5 MB answer and 4 MB of store
    # a run, for 0.54 s of the service's CPU (red-team pass DB)
    text = truncated(sample.result.observation())
    if sample.failure == NO_RESULT:
        text = f"{text}\n{NO_RESULT}"
    events.append(ObservationEvent(step, text))
    return events


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


def _failure_summary(outcomes: Sequence[_Sample], repairs: int) -> str:
    """Why the run failed: the sample count, the repairs tried, and the last sample's error."""
    count = len(outcomes)
    last = outcomes[-1].failure or "unknown failure"
    repaired = f" and {repairs} repair attempt{'s' if repairs != 1 else ''}" if repairs else ""
    noun = "program" if count == 1 else "programs"
    return f"every program failed ({count} sampled {noun}{repaired}); last error: {last}"
