"""What an LLM backend can be made to write, found by asking it (``OpenAILLM.probe``).

A step can be constrained three ways, and servers differ in which they honour:

- a **GBNF grammar**, by the embedded model (``supports_grammar``);
- a **JSON schema** as ``response_format``, in one of two dialects: OpenAI's and vLLM's
  ``json_schema``, or llama-cpp-python's ``json_object`` with a ``schema``;
- **native tool calls**, by servers whose chat format has them.

A server's documentation cannot be trusted on this, nor can a 200: a server may accept a
parameter and ignore it. So the probe asks questions whose answer shows whether the parameter
was enforced: a schema whose only instance is ``{"answer": "<PROBE_ANSWER>"}``, which no model
writes for "What is 2 + 2?" unless it is made to, and a function the model is told to call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, runtime_checkable

from agents.llm.base import ChatMessage, ToolSpec

SchemaDialect = Literal["openai", "llama_cpp"]

PROBE_ANSWER: Final = "reactpal-probe-7f3a"
PROBE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": [PROBE_ANSWER]}},
    "required": ["answer"],
    "additionalProperties": False,
}
PROBE_MESSAGES: Final = (ChatMessage("user", "What is 2 + 2? Answer with the number only."),)
PROBE_TOOL: Final = ToolSpec(
    "record_answer",
    "Record the answer to the user's question.",
    {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    },
)
PROBE_TOOL_MESSAGES: Final = (
    ChatMessage(
        "user", "What is 2 + 2? Do not reply in text: call the record_answer function with it."
    ),
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """``json_schema`` is the dialect the server enforces, None when it enforces none;
    ``tools`` is None when not known (not probed). ``probed`` is False for what a backend
    says of itself without a request (the embedded model)."""

    grammar: bool = False
    json_schema: SchemaDialect | None = None
    tools: bool | None = None
    probed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "grammar": self.grammar,
            "json_schema": self.json_schema,
            "tools": self.tools,
            "probed": self.probed,
        }


@runtime_checkable
class Probing(Protocol):
    """A backend that can be asked what it enforces (``OpenAILLM``)."""

    async def probe(self) -> Capabilities: ...


def is_probe_answer(text: str) -> bool:
    """Whether ``text`` is the probe schema's one instance (whitespace and a code fence, which
    some servers add around JSON, aside)."""
    body = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("answer") == PROBE_ANSWER
