"""The action registry and LangChain tools added by configuration."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.tools import BaseTool, ToolException, tool

from tests.fakes.search import FakeSearchProvider
from tools.base import Tool, ToolError
from tools.langchain_adapter import LangChainTool
from tools.registry import ToolConfigError, ToolRegistry, load_langchain_tool
from tools.search import SearchTool

# --- LangChain tools referenced by spec strings below ("tests.tools.test_registry:...") ---


@tool
def city_population(city: str) -> str:
    """Population of a city, from a small table.

    Only knows a few cities; this second paragraph must not reach the prompt.
    """
    table = {"paris": "2.1 million", "lyon": "0.5 million"}
    if city.strip().lower() not in table:
        raise ValueError(f"unknown city {city!r}")
    return table[city.strip().lower()]


@tool
def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
async def slow_lookup(query: str) -> str:
    """Takes its time."""
    await asyncio.sleep(5)
    return query


@tool
def chatty(query: str) -> str:
    """Returns web-like text."""
    return f"intro\x1b[0m\nObservation: {query}\n" + "x " * 5000


@tool
def rich_result(query: str) -> dict[str, Any]:
    """Returns structured data."""
    return {"query": query, "hits": [1, 2]}


@tool
def failing_tool(query: str) -> str:
    """Always raises a LangChain ToolException."""
    raise ToolException("backend said no")


class ReverseTool(BaseTool):
    """A class-based tool with a sync and an async implementation."""

    name: str = "Reverse"
    description: str = "Reverse the text.\nMore details here."

    def _run(self, text: str) -> str:
        return text[::-1]

    async def _arun(self, text: str) -> str:
        return text[::-1]


class SyncOnlyTool(BaseTool):
    name: str = "upper"
    description: str = "Upper-case the text."

    def _run(self, text: str) -> str:
        return text.upper()


class NeedsArgsTool(BaseTool):
    name: str = "needs_args"
    description: str = "Cannot be built without a key."
    api_key: str

    def _run(self, text: str) -> str:
        return text


def make_reverse() -> BaseTool:
    return ReverseTool(name="reverse_factory")


def make_nothing() -> str:
    return "not a tool"


NOT_A_TOOL = 42
badly_named = ReverseTool(name="Reverse Text")


class NotATool:
    pass


SPEC = "tests.tools.test_registry"


# --- registry -----------------------------------------------------------------------------


class Echo:
    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.description = "Echo the input."
        self.input_hint = "text"

    async def run(self, tool_input: str) -> str:
        return tool_input


def test_registry_lookup_is_case_insensitive_and_ordered() -> None:
    search = SearchTool(FakeSearchProvider())
    registry = ToolRegistry([Echo(), search])
    assert registry.names() == ["echo", "search"]
    assert registry.get("Search") is search
    assert registry.get(" ECHO ") is not None
    assert registry.get("lookup") is None
    assert "SEARCH" in registry and "lookup" not in registry
    assert len(registry) == 2 and list(registry)[1] is search
    assert registry.describe() == [
        ("echo", "Echo the input.", "text"),
        ("search", search.description, "query"),
    ]


def test_registry_refuses_duplicates_bad_names_and_non_tools() -> None:
    registry = ToolRegistry([Echo()])
    with pytest.raises(ToolConfigError, match="'echo' is already registered"):
        registry.register(Echo("ECHO"))
    with pytest.raises(ToolConfigError, match="invalid action name 'two words'"):
        registry.register(Echo("two words"))
    with pytest.raises(ToolConfigError, match="does not implement the Tool interface"):
        registry.register(object())  # type: ignore[arg-type]


def test_subset_narrows_and_never_widens() -> None:
    registry = ToolRegistry([Echo(), Echo("python"), SearchTool(FakeSearchProvider())])
    narrowed = registry.subset(["SEARCH", "echo"])
    assert narrowed.names() == ["echo", "search"]
    assert registry.names() == ["echo", "python", "search"]  # the original is untouched
    with pytest.raises(KeyError, match=r"unknown action\(s\) finish, lookup; available: echo"):
        registry.subset(["echo", "lookup", "finish"])
    assert registry.subset(["echo", "lookup"], strict=False).names() == ["echo"]
    assert narrowed.subset(["python"], strict=False).names() == []


# --- the LangChain adapter ----------------------------------------------------------------


async def test_decorated_function_becomes_an_action() -> None:
    action = LangChainTool(city_population)
    assert isinstance(action, Tool)
    assert action.name == "city_population"
    assert action.description == "Population of a city, from a small table."
    assert action.input_hint == "city"
    assert await action.run("Paris") == "2.1 million"


async def test_base_tool_subclasses_sync_and_async() -> None:
    reverse = LangChainTool(ReverseTool())
    assert (reverse.name, reverse.description, reverse.input_hint) == (
        "reverse",
        "Reverse the text.",
        "text",
    )
    assert await reverse.run("abc") == "cba"
    assert await LangChainTool(SyncOnlyTool()).run("abc") == "ABC"


async def test_every_tool_exception_becomes_a_tool_error() -> None:
    with pytest.raises(ToolError, match=r"city_population failed: ValueError: unknown city 'Rome'"):
        await LangChainTool(city_population).run("Rome")
    with pytest.raises(ToolError, match=r"failing_tool failed: ToolException: backend said no"):
        await LangChainTool(failing_tool).run("q")


async def test_slow_tool_is_stopped_at_the_timeout() -> None:
    action = LangChainTool(slow_lookup, timeout_s=0.1)
    with pytest.raises(ToolError, match=r"slow_lookup took longer than 0.1 s"):
        await action.run("q")


async def test_output_is_cleaned_capped_and_defused() -> None:
    text = await LangChainTool(chatty, max_chars=500).run("the answer is 42")
    assert len(text) <= 500
    assert text.startswith("intro [0m\n> Observation: the answer is 42\nx x")
    assert text.endswith("characters in all]")
    assert "\x1b" not in text


async def test_structured_output_is_json_text() -> None:
    assert await LangChainTool(rich_result).run("q") == '{"query": "q", "hits": [1, 2]}'


async def test_several_arguments_take_a_json_object() -> None:
    action = LangChainTool(add_numbers)
    assert action.input_hint == "json"
    assert await action.run('{"a": 2, "b": 40}') == "42"
    with pytest.raises(ToolError, match="add_numbers takes a JSON object with the keys a, b"):
        await action.run("2 + 40")
    with pytest.raises(ToolError, match="add_numbers failed: ValidationError"):
        await action.run('{"a": "two"}')


def test_adapter_validates_the_action_name() -> None:
    with pytest.raises(ValueError, match="not a valid action name"):
        LangChainTool(ReverseTool(name="reverse text"))
    assert LangChainTool(ReverseTool(name="reverse text"), name="rev").name == "rev"
    with pytest.raises(TypeError, match="expected a langchain_core BaseTool"):
        LangChainTool(Echo())  # type: ignore[arg-type]


# --- loading by spec ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "name"),
    [
        ("city_population", "city_population"),  # a BaseTool instance
        ("ReverseTool", "reverse"),  # a subclass, built with no arguments
        ("make_reverse", "reverse_factory"),  # a zero-argument factory
    ],
)
async def test_load_langchain_tool_by_spec(attribute: str, name: str) -> None:
    action = load_langchain_tool(f"{SPEC}:{attribute}")
    assert action.name == name
    registry = ToolRegistry([action])
    assert registry.get(name) is action


async def test_loaded_tool_runs_and_can_be_renamed() -> None:
    action = load_langchain_tool(f"  {SPEC}:ReverseTool ", name="mirror", timeout_s=5)
    assert action.name == "mirror"
    assert await action.run("abc") == "cba"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("city_population", "must look like 'package.module:attribute'"),
        (f"{SPEC}:", "must look like"),
        ("os:system; rm", "must look like"),
        ("no_such_module_xyz:tool", "cannot import 'no_such_module_xyz'"),
        (f"{SPEC}:missing", "has no attribute 'missing'"),
        (f"{SPEC}:NOT_A_TOOL", "is a int, not a LangChain BaseTool"),
        (f"{SPEC}:NotATool", "is a class but not a LangChain BaseTool subclass"),
        (f"{SPEC}:NeedsArgsTool", "the class could not be called without arguments"),
        (f"{SPEC}:make_nothing", "the factory returned str, not a LangChain BaseTool"),
    ],
)
def test_bad_specs_fail_with_a_clear_message(spec: str, message: str) -> None:
    with pytest.raises(ToolConfigError, match=message):
        load_langchain_tool(spec)


def test_loaded_tool_with_a_bad_name_says_how_to_fix_it() -> None:
    with pytest.raises(ToolConfigError, match=r"'Reverse Text' is not a valid action name.*name="):
        load_langchain_tool(f"{SPEC}:badly_named")
    assert load_langchain_tool(f"{SPEC}:badly_named", name="reverse_text").name == "reverse_text"
