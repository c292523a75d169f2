"""AGENT_PROTOCOL: what the probe finds on a server, and the protocol each setting becomes."""

from __future__ import annotations

import pytest

from agents.errors import LLMError
from agents.llm.base import ChatMessage
from agents.llm.capabilities import PROBE_ANSWER, Capabilities, is_probe_answer
from agents.protocol import ProtocolChoice, Resolved, choose
from tests.fakes import FakeOpenAI, make_llm

STEP = {"type": "object", "properties": {"action": {"type": "string"}}}


@pytest.mark.parametrize("dialect", ["openai", "llama_cpp"])
async def test_the_probe_finds_the_dialect_the_server_enforces(dialect: str) -> None:
    fake = FakeOpenAI(enforces=dialect)  # type: ignore[arg-type]
    llm = make_llm(fake)
    caps = await llm.probe()
    assert caps == Capabilities(json_schema=dialect, tools=False, probed=True)  # type: ignore[arg-type]
    await llm.complete([ChatMessage("user", "q")], response_schema=STEP)
    sent = fake.last.body["response_format"]
    if dialect == "llama_cpp":  # llama-cpp-python's server: json_object with a schema
        assert sent == {"type": "json_object", "schema": STEP}
    else:
        assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == STEP


async def test_a_server_that_ignores_response_format_and_tools_enforces_nothing() -> None:
    fake = FakeOpenAI()
    caps = await make_llm(fake).probe()
    assert caps.json_schema is None and caps.tools is False
    formats = [r.body["response_format"]["type"] for r in fake.chat_requests[:2]]
    assert formats == ["json_schema", "json_object"]  # both dialects were tried


async def test_the_probe_sees_native_tool_calls() -> None:
    caps = await make_llm(FakeOpenAI(enforces="openai", tool_calls=True)).probe()
    assert caps.tools is True and caps.json_schema == "openai"


async def test_a_500_to_a_dialect_means_unsupported_but_a_503_is_the_server_down() -> None:
    failing = FakeOpenAI(enforces="llama_cpp")
    failing.fail("500")  # the OpenAI dialect makes this server fail; the other one is tried
    assert (await make_llm(failing).probe()).json_schema == "llama_cpp"
    down = FakeOpenAI(enforces="openai")
    down.fail("503", times=5)
    with pytest.raises(LLMError):
        await make_llm(down).probe()


def test_is_probe_answer_needs_the_one_instance() -> None:
    assert is_probe_answer(f'```json\n{{"answer": "{PROBE_ANSWER}"}}\n```')
    assert not is_probe_answer('{"answer": "4"}')
    assert not is_probe_answer("4")


@pytest.mark.parametrize(
    ("configured", "caps", "expected"),
    [
        ("auto", Capabilities(grammar=True, tools=False), Resolved("text")),
        ("auto", Capabilities(json_schema="llama_cpp", tools=False), Resolved("json")),
        ("auto", Capabilities(json_schema="openai", tools=True), Resolved("json")),
        ("auto", Capabilities(tools=True), Resolved("tools")),
        ("auto", Capabilities(tools=False), Resolved("text")),
        ("text", Capabilities(json_schema="openai", tools=True), Resolved("text")),
        ("json", Capabilities(), Resolved("json")),
        ("tools", Capabilities(tools=True), Resolved("tools")),
        ("tools", Capabilities(tools=False), Resolved("tools", tools_ignored=True)),
        ("tools", Capabilities(tools=None), Resolved("tools")),
    ],
)
def test_choose(configured: str, caps: Capabilities, expected: Resolved) -> None:
    assert choose(configured, caps, native_tools=True) == expected  # type: ignore[arg-type]


async def test_auto_against_llama_cpps_dialect_is_json_and_the_probe_runs_once() -> None:
    fake = FakeOpenAI(enforces="llama_cpp")
    choice = ProtocolChoice(make_llm(fake), "auto")
    assert await choice.resolve() == Resolved("json")
    probes = fake.calls
    assert await choice.resolve() == Resolved("json")
    assert fake.calls == probes  # cached
    described = choice.describe()
    assert described["effective"] == "json"
    assert described["capabilities"]["json_schema"] == "llama_cpp"


async def test_text_asks_nothing() -> None:
    fake = FakeOpenAI(enforces="openai")
    choice = ProtocolChoice(make_llm(fake), "text")
    assert await choice.resolve() == Resolved("text")
    assert fake.calls == 0


async def test_a_server_down_decides_nothing_and_is_asked_again_later() -> None:
    now = [0.0]
    fake = FakeOpenAI(enforces="openai")
    fake.fail("connect")  # the probe makes one attempt per request, no retries
    choice = ProtocolChoice(make_llm(fake), "auto", retry_s=30, clock=lambda: now[0])
    assert await choice.resolve() == Resolved("text", decided=False)
    assert choice.describe()["probe"].startswith("failed")
    calls = fake.calls
    assert await choice.resolve() == Resolved("text", decided=False)
    assert fake.calls == calls  # not asked again within retry_s
    now[0] = 31.0
    assert await choice.resolve() == Resolved("json")


async def test_tools_on_a_server_without_tool_calls_is_flagged() -> None:
    choice = ProtocolChoice(make_llm(FakeOpenAI()), "tools")
    assert await choice.resolve() == Resolved("tools", tools_ignored=True)
    assert "does not do tool calls" in choice.describe()["warning"]
