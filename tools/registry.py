"""The set of actions the service can offer, by name: what the allow-list is checked against.

The service builds one ``ToolRegistry`` at start-up (``python``, ``search`` and any LangChain
tools the operator configured) and narrows it per request with ``subset`` to the server
allow-list ∩ the request's list. ``finish`` is handled by the agent loop, so it is usually not
registered: drop it from the names (or pass ``strict=False``) before calling ``subset``.

``load_langchain_tool`` reads an operator's ``"module.path:attribute"`` spec. It imports code,
so specs come from trusted configuration (environment / settings) only, never from a request.

    ValueError
    └── ToolConfigError    a bad spec, name or registration; raised at start-up, not per run
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from tools.base import Tool

# A name, or "server.tool": an MCP server's tool (tools.mcp_tool).
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}(?:\.[a-z_][a-z0-9_]{0,63})?$")
_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class ToolConfigError(ValueError):
    """The tool configuration is wrong; the message says how to fix it."""


class ToolRegistry:
    """Tools by lowercase name, in registration order."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if not isinstance(tool, Tool):
            raise ToolConfigError(f"{tool!r} does not implement the Tool interface")
        key = tool.name.lower()
        if not _NAME.match(key):
            raise ToolConfigError(
                f"invalid action name {tool.name!r}: lowercase letters, digits and _, "
                "starting with a letter"
            )
        if key in self._tools:
            raise ToolConfigError(f"an action named {key!r} is already registered")
        self._tools[key] = tool

    def get(self, name: str) -> Tool | None:
        """The tool called ``name`` (any case), or ``None``."""
        return self._tools.get(name.strip().lower())

    def names(self) -> list[str]:
        return list(self._tools)

    def describe(self) -> list[tuple[str, str, str]]:
        """``(name, description, input_hint)`` per tool, for prompts and ``GET /actions``."""
        return [(name, tool.description, tool.input_hint) for name, tool in self._tools.items()]

    def subset(self, names: Iterable[str], *, strict: bool = True) -> ToolRegistry:
        """A registry with only ``names`` (any case; order of this registry). With ``strict``,
        an unknown name raises ``KeyError`` listing what exists; otherwise it is skipped."""
        wanted = {name.strip().lower() for name in names}
        unknown = sorted(wanted - self._tools.keys())
        if strict and unknown:
            raise KeyError(
                f"unknown action(s) {', '.join(unknown)}; available: {', '.join(self._tools)}"
            )
        return ToolRegistry(tool for key, tool in self._tools.items() if key in wanted)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)


def load_langchain_tool(
    spec: str, *, name: str | None = None, timeout_s: float = 30.0, max_chars: int = 4000
) -> Tool:
    """Import ``"module.path:attribute"`` and wrap it as an action.

    The attribute may be a ``BaseTool`` instance, a ``BaseTool`` subclass (instantiated with no
    arguments) or a zero-argument factory returning a ``BaseTool``. Raises ``ToolConfigError``
    with what went wrong. Trusted configuration only: this imports and runs operator code.
    """
    from langchain_core.tools import BaseTool

    from tools.langchain_adapter import LangChainTool

    spec = spec.strip()
    if not _SPEC.match(spec):
        raise ToolConfigError(
            f"LangChain tool spec {spec!r} must look like 'package.module:attribute'"
        )
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module failing while it loads
        raise ToolConfigError(f"cannot import {module_name!r} for tool {spec!r}: {exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ToolConfigError(f"{module_name!r} has no attribute {attribute!r}") from exc

    if isinstance(obj, BaseTool):
        tool = obj
    elif callable(obj):
        kind = "class" if isinstance(obj, type) else "factory"
        if isinstance(obj, type) and not issubclass(obj, BaseTool):
            raise ToolConfigError(f"{spec!r} is a class but not a LangChain BaseTool subclass")
        try:
            tool = obj()
        except Exception as exc:
            raise ToolConfigError(
                f"{spec!r}: the {kind} could not be called without arguments: {exc}"
            ) from exc
        if not isinstance(tool, BaseTool):
            raise ToolConfigError(
                f"{spec!r}: the factory returned {type(tool).__name__}, not a LangChain BaseTool"
            )
    else:
        raise ToolConfigError(
            f"{spec!r} is a {type(obj).__name__}, not a LangChain BaseTool, BaseTool subclass "
            "or zero-argument factory"
        )
    try:
        return LangChainTool(tool, name=name, timeout_s=timeout_s, max_chars=max_chars)
    except ValueError as exc:
        raise ToolConfigError(f"{spec!r}: {exc}") from exc
