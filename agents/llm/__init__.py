"""LLM backends behind one small protocol (``agents.llm.base.LLM``)."""

from agents.llm.base import LLM, ChatMessage, Choice, Completion, ToolCall, ToolSpec, Usage

__all__ = ["LLM", "ChatMessage", "Choice", "Completion", "ToolCall", "ToolSpec", "Usage"]
