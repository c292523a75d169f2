"""Fakes shared by the test suite: a scripted OpenAI-compatible LLM (``tests.fakes.llm``)."""

from tests.fakes.llm import (
    FakeOpenAI,
    FakeRequest,
    Fault,
    FaultKind,
    Reply,
    Scenario,
    ToolCallReply,
    make_llm,
)

__all__ = [
    "FakeOpenAI",
    "FakeRequest",
    "Fault",
    "FaultKind",
    "Reply",
    "Scenario",
    "ToolCallReply",
    "make_llm",
]
