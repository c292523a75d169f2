"""The LLM protocol every backend implements (OpenAI-compatible HTTP, the embedded model, test
fakes). Backends translate their library's errors into ``agents.errors.LLMError`` subclasses;
nothing from ``openai`` or ``llama_cpp`` leaks past the backend module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A native tool call returned by the model; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call natively: ``parameters`` is a JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Choice:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    choices: tuple[Choice, ...]
    usage: Usage = field(default_factory=Usage)
    # The server requests it took: more than one when the server ignored ``n`` and the
    # missing choices were drawn one by one (``llm_calls`` counts requests).
    requests: int = 1

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""


@runtime_checkable
class LLM(Protocol):
    """A chat-completion backend.

    ``stop`` must be honoured (the text protocol stops at ``Observation``). ``n > 1`` asks for
    several samples; a backend with ``supports_n`` False raises nothing but returns one choice,
    and callers draw the rest concurrently. ``tools`` is only passed when ``supports_tools``.
    ``grammar`` is a GBNF grammar, honoured by backends that can (the embedded model) and
    ignored by the rest. ``response_schema`` is a JSON schema the reply must be an instance of
    (``AGENT_PROTOCOL=json``): sent as the server's ``response_format`` in the dialect its
    probe found (``agents.protocol``), or compiled to a grammar by the embedded model. Every
    failure is an ``LLMError``.
    """

    @property
    def model(self) -> str: ...

    @property
    def supports_n(self) -> bool: ...

    @property
    def supports_tools(self) -> bool: ...

    @property
    def supports_grammar(self) -> bool:
        """True when ``grammar`` constrains sampling (then the ReAct loop passes one)."""
        ...

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
    ) -> Completion: ...

    @property
    def supports_prefill(self) -> bool:
        """True when a final ``assistant`` message is continued rather than answered: the
        completion is what the model writes after that message's text (the text itself is
        not repeated). Then a caller may give the start of the reply instead of having the
        model generate it (PAL's program header, ``agents.pal.mode``)."""
        ...

    @property
    def supports_warm_up(self) -> bool:
        """True when the backend runs here and keeps a prompt cache worth filling before the
        first request (the embedded model); then it is also loaded before serving."""
        ...

    def count_tokens(self, text: str) -> int | None:
        """How many tokens ``text`` is for this model, when the backend has its tokenizer at
        hand and counting costs nothing (no request, no model load); None otherwise, and the
        caller estimates (``agents.memory.estimate_tokens``). Synchronous: it is called per
        earlier turn while a run's memory is chosen, on the event loop."""
        ...

    async def check(self) -> None:
        """Cheap readiness probe; raises ``LLMError`` when the backend is not usable."""
        ...

    async def warm_up(self, conversations: Sequence[Sequence[ChatMessage]]) -> int:
        """Prefill ``conversations`` in the backend's prompt cache, without delaying requests;
        returns how many were. A backend that cannot returns 0 at once."""
        ...

    async def aclose(self) -> None: ...
