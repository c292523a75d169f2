"""Fakes for PAL tests: an in-process sandbox for our own scripted programs, and helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from agents.events import FinalEvent, StepEvent
from agents.llm.base import LLM, ChatMessage, Choice, Completion, ToolSpec
from tools.sandbox.result import ExecutionResult


class FakeSandbox:
    """Runs the test's own scripted programs with ``exec`` (never model output), following the
    PAL protocol: ``solution()``, else ``result``/``answer``. Records concurrency."""

    def __init__(self, delay_s: float = 0.01) -> None:
        self.delay_s = delay_s
        self.programs: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.cancelled = 0

    async def run(self, code: str, *, timeout_s: float | None = None) -> ExecutionResult:
        self.programs.append(code)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        namespace: dict[str, Any] = {}
        try:
            exec(compile(code, "<program>", "exec"), namespace)
            if callable(namespace.get("solution")):
                value = namespace["solution"]()
            else:
                value = namespace.get("result", namespace.get("answer"))
        except Exception as exc:
            return ExecutionResult(ok=False, error_kind=type(exc).__name__, error=str(exc))
        return ExecutionResult(ok=True, value=value, value_repr=repr(value))


class NoN:
    """An LLM that cannot draw several samples in one call (``supports_n`` False)."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def supports_n(self) -> bool:
        return False

    @property
    def supports_grammar(self) -> bool:
        return False

    @property
    def supports_tools(self) -> bool:
        return False

    @property
    def supports_prefill(self) -> bool:
        return False

    @property
    def supports_warm_up(self) -> bool:
        return False

    async def warm_up(self, conversations: Sequence[Sequence[ChatMessage]]) -> int:
        return 0

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
        assert n == 1, "a backend without n must be asked for one choice"
        return await self.inner.complete(
            messages, stop=stop, temperature=temperature, max_tokens=max_tokens
        )

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()


class Continues(NoN):
    """A backend that continues a final assistant message (``supports_prefill``), over a
    scripted one that writes whole replies: it sends the conversation without that message
    and answers with what the script wrote after it, which must begin with it."""

    def __init__(self, inner: LLM) -> None:
        super().__init__(inner)
        self.starts: list[str | None] = []

    @property
    def supports_prefill(self) -> bool:
        return True

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
        start = messages[-1].content if messages[-1].role == "assistant" else None
        self.starts.append(start)
        if start is not None:
            messages = messages[:-1]
        whole = await super().complete(
            messages, stop=stop, temperature=temperature, max_tokens=max_tokens
        )
        if start is None:
            return whole
        assert whole.text.startswith(start), (start, whole.text)
        return Completion((Choice(whole.text[len(start) :]),), whole.usage)


async def collect(events: AsyncIterator[StepEvent]) -> tuple[list[StepEvent], FinalEvent]:
    steps: list[StepEvent] = []
    async for event in events:
        steps.append(event)
    final = steps.pop()
    assert isinstance(final, FinalEvent), final
    assert not any(isinstance(e, FinalEvent) for e in steps), "exactly one FinalEvent, last"
    return steps, final


def program(value_expr: str, doc: str = "Scripted.") -> str:
    return f'def solution():\n    """{doc}"""\n    result = {value_expr}\n    return result\n'


def fenced(code: str) -> str:
    return f"```python\n{code}```"
