"""Any LangChain tool (``langchain_core.tools.BaseTool``) as one of our actions.

Which LangChain tools exist is operator configuration (trusted, read at start-up); a request
can never add one. What goes *into* a tool is LLM text and what comes *out* is often web
content, so both are treated as untrusted: the input is passed as a string (or, for a tool with
several arguments, a JSON object), the call is bounded by a timeout, every exception becomes a
``ToolError``, and the output is cleaned, size-capped, and defused like search results.

Limit: a tool with only a synchronous ``_run`` runs in LangChain's executor thread; on timeout
the agent goes on but that thread finishes in the background.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from langchain_core.tools import BaseTool

from tools.base import ToolError
from tools.search.base import clean_block, clean_line, truncate

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DESCRIPTION_CHARS = 200
_ERROR_CHARS = 300


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return truncate(clean_line(line, _DESCRIPTION_CHARS), _DESCRIPTION_CHARS)
    return ""


class LangChainTool:
    """Adapts one ``BaseTool`` to the ``Tool`` protocol."""

    def __init__(
        self,
        tool: BaseTool,
        *,
        name: str | None = None,
        timeout_s: float = 30.0,
        max_chars: int = 4000,
    ) -> None:
        if not isinstance(tool, BaseTool):
            raise TypeError(f"expected a langchain_core BaseTool, got {type(tool).__name__}")
        action = (name or tool.name).strip().lower()
        if not _NAME.match(action):
            raise ValueError(
                f"LangChain tool name {tool.name!r} is not a valid action name (lowercase "
                "letters, digits and _, starting with a letter); give it one with name=..."
            )
        if timeout_s <= 0 or max_chars < 100:
            raise ValueError("timeout_s must be positive and max_chars at least 100")
        self._tool = tool
        self._name = action
        self._description = _first_line(tool.description) or f"The LangChain tool {tool.name}."
        self._args = list(tool.args)
        self._timeout_s = timeout_s
        self._max_chars = max_chars

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def input_hint(self) -> str:
        return self._args[0] if len(self._args) == 1 else "json"

    async def run(self, tool_input: str) -> str:
        payload = self._payload(tool_input)
        try:
            async with asyncio.timeout(self._timeout_s) as deadline:
                result = await self._tool.ainvoke(payload)
        except TimeoutError as exc:
            if deadline.expired():
                raise ToolError(
                    f"{self._name} took longer than {self._timeout_s:g} s and was stopped"
                ) from exc
            raise ToolError(f"{self._name} failed: {_describe(exc)}") from exc
        except ToolError:
            raise
        except Exception as exc:  # every LangChain/tool error becomes an observation
            raise ToolError(f"{self._name} failed: {_describe(exc)}") from exc
        return self._observation(result)

    def _payload(self, tool_input: str) -> str | dict[str, Any]:
        if len(self._args) <= 1:
            return tool_input
        # Several arguments: the model writes a JSON object, e.g. {"a": 1, "b": 2}.
        try:
            payload = json.loads(tool_input)
        except ValueError as exc:
            raise ToolError(self._json_hint()) from exc
        if not isinstance(payload, dict):
            raise ToolError(self._json_hint())
        return payload

    def _json_hint(self) -> str:
        keys = ", ".join(self._args)
        return f"{self._name} takes a JSON object with the keys {keys}"

    def _observation(self, result: Any) -> str:
        raw = _to_text(result)
        text = clean_block(raw, self._max_chars)
        if len(text) > self._max_chars:
            cut = self._max_chars - 40
            text = f"{truncate(text, cut)}\n[truncated: {len(raw)} characters in all]"
        return text or f"({self._name} returned nothing)"


def _to_text(result: Any) -> str:
    content = getattr(result, "content", result)  # a ToolMessage / BaseMessage
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [str(part.get("text", "")) for part in content if part.get("type") == "text"]
        if texts:
            return "\n".join(texts)
    try:
        return json.dumps(content, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(content)


def _describe(exc: BaseException) -> str:
    detail = clean_line(str(exc), _ERROR_CHARS)
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return truncate(text, _ERROR_CHARS)
