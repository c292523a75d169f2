"""Conversation memory: which earlier turns of a thread the model sees, and the running summary.

The service stores a thread's turns (its earlier runs) and, for the ``summary`` strategy, the
summary text and how many of the thread's turns it covers; it calls :func:`prepare` before
each run and stores the :class:`SummaryUpdate` it returns. Everything here is the agent side:

* ``buffer``: every earlier turn.
* ``window``: the last ``window`` turns.
* ``tokens``: the newest turns that fit ``max_tokens``, counted with the backend's own
  tokenizer where it has one at hand (the embedded model, once loaded), else estimated
  (:func:`estimate_tokens`); see :func:`token_counter`.
* ``summary``: a running summary of the older turns, written by the LLM and updated
  incrementally (only turns not yet folded in are sent), plus the last ``window`` turns
  verbatim.

A turn is a question and its final answer, never the run's trace: steps, programs and
observations stay out, which keeps the prompt short and keeps earlier tool output (untrusted,
possibly long) from piling up. A turn whose answer is None (a run that failed or was cut off)
is skipped by every strategy: it answered nothing, and a question without its answer only
invites the model to answer it again.

The selected turns are rendered by each mode (``agents.react.prompt``, ``agents.pal.prompt``),
always after the cached prefix and through ``agents.untrusted``: an earlier answer may quote a
tool's output, and the summary is model text written from such answers.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal, get_args

from agents.errors import LLMError
from agents.llm.base import LLM, ChatMessage, Usage
from agents.untrusted import untrusted_text

log = logging.getLogger(__name__)

Strategy = Literal["buffer", "window", "tokens", "summary"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)

CHARS_PER_TOKEN = 4  # the estimate's ratio: English text runs at about 4 characters a token
# What a mode adds around one turn besides its text, about a dozen tokens: two turns' role
# tokens, "Question: ", "Thought: ... Action: finish[" ... "]" (ReAct) or "Answer: " (PAL).
TURN_OVERHEAD_TOKENS = 12
SUMMARY_LABEL = "Summary of the earlier conversation:"

TokenCounter = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier run of the thread: its question and final answer (None when it failed,
    which every strategy skips), and for a PAL run the program that computed the answer:
    PAL's own form of an answer, which a follow-up ("and what if she bought seven?") edits."""

    question: str
    answer: str | None
    program: str | None = None

    @property
    def answered(self) -> bool:
        return self.answer is not None and bool(self.answer.strip())

    def bounded(self) -> Turn:
        """The turn as memory shows it: question and answer cut to ``MAX_TURN_CHARS``, the
        program to ``MAX_PROGRAM_CHARS`` (an OpenAI client's 960 KB assistant message went
        to the model with each of a run's nine calls)."""
        return Turn(
            _cut(self.question, MAX_TURN_CHARS),
            None if self.answer is None else _cut(self.answer, MAX_TURN_CHARS),
            None if self.program is None else _cut(self.program, MAX_PROGRAM_CHARS),
        )


MAX_TURN_CHARS = 4000
MAX_PROGRAM_CHARS = 16_000
MAX_BUFFER_TURNS = 50  # "buffer" keeps every turn, up to this many: a request may choose it


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...cut]"


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """A run's memory settings (``MEMORY_STRATEGY``, ``MEMORY_WINDOW``, ``MEMORY_MAX_TOKENS``;
    a request may choose the strategy). ``window`` is k for ``window`` and the verbatim tail
    of ``summary`` (0: the summary only); ``max_tokens`` is the budget of ``tokens``;
    ``summary_max_tokens`` bounds the summarizing call's completion, hence the summary."""

    strategy: Strategy = "window"
    window: int = 4
    max_tokens: int = 1500
    summary_max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"unknown memory strategy {self.strategy!r}; expected one of: "
                + ", ".join(STRATEGIES)
            )
        if self.window < 0:
            raise ValueError(f"memory window must be >= 0, got {self.window}")
        if self.max_tokens < 1:
            raise ValueError(f"memory max_tokens must be >= 1, got {self.max_tokens}")
        if self.summary_max_tokens < 1:
            raise ValueError(f"summary_max_tokens must be >= 1, got {self.summary_max_tokens}")


@dataclass(frozen=True, slots=True)
class Memory:
    """What the model sees of the thread before the current question: the running summary
    (``summary`` strategy only) and earlier turns, oldest first, every one answered."""

    summary: str | None = None
    turns: tuple[Turn, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.turns) or bool(self.summary)


@dataclass(frozen=True, slots=True)
class SummaryUpdate:
    """What the service stores for the thread after :func:`prepare`: the new summary, and how
    many of the thread's turns (from the first, failed ones included) it now covers."""

    summary: str | None
    summarized: int


@dataclass(frozen=True, slots=True)
class Prepared:
    """The result of :func:`prepare`: the run's ``memory``; the ``update`` to store (None:
    store nothing); ``summary_error``, why the summary could not be updated (the run then goes
    on with the old summary, and the same turns are folded in at the next run); ``usage``,
    the tokens of the summarizing call (the run's own usage does not include them)."""

    memory: Memory
    update: SummaryUpdate | None = None
    summary_error: str | None = None
    usage: Usage = field(default_factory=Usage)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per ``CHARS_PER_TOKEN`` characters, rounded up. It
    errs high on English prose, so a budget counted with it is rarely overrun."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def token_counter(llm: LLM) -> TokenCounter:
    """Count with ``llm``'s own tokenizer when it has one at hand (``LLM.count_tokens`` gives a
    number), else estimate. An LLM without the method at all (a stub written before it) counts
    as one without a tokenizer."""
    count = getattr(llm, "count_tokens", None)

    def counter(text: str) -> int:
        exact = count(text) if callable(count) else None
        return exact if isinstance(exact, int) else estimate_tokens(text)

    return counter


def turn_tokens(turn: Turn, count_tokens: TokenCounter) -> int:
    """What ``turn`` costs in the prompt: its question, its answer and the framing around them."""
    return count_tokens(turn.question) + count_tokens(turn.answer or "") + TURN_OVERHEAD_TOKENS


def select(
    turns: Sequence[Turn],
    config: MemoryConfig,
    *,
    count_tokens: TokenCounter = estimate_tokens,
) -> tuple[Turn, ...]:
    """The earlier turns shown verbatim, oldest first, for ``config.strategy`` (for
    ``summary``: its verbatim tail). Pure: no LLM, no summary."""
    answered = [turn for turn in turns if turn.answered]
    if config.strategy == "buffer":
        return _last(answered, MAX_BUFFER_TURNS)
    if config.strategy == "tokens":
        return _newest_within(answered, config.max_tokens, count_tokens)
    return _last(answered, config.window)


def _last(turns: Sequence[Turn], k: int) -> tuple[Turn, ...]:
    return tuple(turns[len(turns) - k :]) if k > 0 else ()


def _newest_within(
    turns: Sequence[Turn], budget: int, count_tokens: TokenCounter
) -> tuple[Turn, ...]:
    """Newest first, until the first turn that does not fit: an older turn that would fit is
    not taken past it, so what is shown is always a contiguous recent stretch (a gap would
    make a follow-up refer to a turn the model cannot see)."""
    kept: list[Turn] = []
    for turn in reversed(turns):
        cost = turn_tokens(turn, count_tokens)
        if cost > budget:
            break
        budget -= cost
        kept.append(turn)
    return tuple(reversed(kept))


async def prepare(
    turns: Sequence[Turn],
    config: MemoryConfig,
    *,
    llm: LLM,
    summary: str | None = None,
    summarized: int = 0,
) -> Prepared:
    """The memory of a run whose thread has ``turns`` before it (every earlier run, oldest
    first, failed ones included, so that ``summarized`` indexes the same list every time).

    For ``buffer``, ``window`` and ``tokens`` this only selects (``summary`` and
    ``summarized`` are ignored, and ``update`` is None). For ``summary`` the last
    ``config.window`` answered turns stay verbatim; the turns before them that the stored
    ``summary`` does not cover yet (from index ``summarized``) are folded into it with one LLM
    call, and ``update`` says what to store. When that call fails (``LLMError``), the run gets
    the old summary, ``update`` is None and ``summary_error`` says why: memory never fails a
    run, and the next run tries the same turns again.
    """
    turns = [turn.bounded() for turn in turns]
    if config.strategy != "summary":
        return Prepared(Memory(turns=select(turns, config, count_tokens=token_counter(llm))))
    summarized = min(max(summarized, 0), len(turns))
    first_kept = _verbatim_start(turns, config.window)
    recent = tuple(turn for turn in turns[first_kept:] if turn.answered)
    leaving = [turn for turn in turns[summarized:first_kept] if turn.answered]
    if first_kept <= summarized:  # nothing has left the window since the last update
        return Prepared(Memory(summary, recent))
    if not leaving:  # only failed turns left the window: move past them, nothing to write
        return Prepared(Memory(summary, recent), SummaryUpdate(summary, first_kept))
    try:
        new_summary, usage = await summarize(
            llm, summary, leaving, max_tokens=config.summary_max_tokens
        )
    except LLMError as exc:
        log.warning("memory: the summary was not updated, the old one is used: %s", exc)
        return Prepared(Memory(summary, recent), summary_error=str(exc))
    update = SummaryUpdate(new_summary, first_kept)
    return Prepared(Memory(new_summary, recent), update, usage=usage)


def _verbatim_start(turns: Sequence[Turn], k: int) -> int:
    """The index in ``turns`` where the verbatim tail (the last ``k`` answered turns) starts;
    failed turns inside the tail are skipped when shown, those before it are folded past."""
    if k == 0:
        return len(turns)
    seen = 0
    for index in range(len(turns) - 1, -1, -1):
        seen += turns[index].answered
        if seen == k:
            return index
    return 0


_LABEL = re.compile(r"^\W*(?:updated\s+|new\s+)?summary\W*:\s*", re.IGNORECASE)


async def summarize(
    llm: LLM, summary: str | None, turns: Sequence[Turn], *, max_tokens: int = 256
) -> tuple[str, Usage]:
    """``summary`` with ``turns`` folded in, from one LLM call (temperature 0), and the call's
    usage. ``LLMError`` propagates, also for an empty reply: an empty summary would silently
    drop the turns."""
    completion = await llm.complete(
        summary_messages(summary, turns), temperature=0.0, max_tokens=max_tokens
    )
    text = _LABEL.sub("", completion.text.strip(), count=1).strip()
    if not text:
        raise LLMError("the model wrote an empty summary")
    return text, completion.usage


def summary_messages(summary: str | None, turns: Sequence[Turn]) -> list[ChatMessage]:
    """The summarizing request: the instructions, then the summary so far and the turns to
    fold in, all of it shown as untrusted text (the turns' answers may quote tool output)."""
    lines = [
        "Summary so far:",
        untrusted_text(summary) if summary else "(none yet)",
        "",
        "Turns to add:",
    ]
    for turn in turns:
        lines.append(f"Question: {untrusted_text(turn.question)}")
        lines.append(f"Answer: {untrusted_text(turn.answer or '')}")
    lines += ["", "Write the updated summary."]
    return [ChatMessage("system", _instructions()), ChatMessage("user", "\n".join(lines))]


def shown_summary(summary: str) -> str:
    """The summary as a prompt shows it: labelled, and as untrusted text."""
    return f"{SUMMARY_LABEL} {untrusted_text(summary.strip())}"


@cache
def _instructions() -> str:
    path = resources.files("agents").joinpath("prompts/memory_summary.txt")
    return path.read_text(encoding="utf-8").strip()
