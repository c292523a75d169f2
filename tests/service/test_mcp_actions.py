"""``MCP_SERVERS`` end to end: a real MCP server's tools as actions of a ReAct run through the
real app, only where ``ALLOWED_ACTIONS`` lists them, in both step protocols, and a run that
goes on when the server is down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes import FakeOpenAI, Scenario, ToolCallReply
from tests.fakes.mcp_server import RemoteMcp
from tests.service.conftest import AppFactory

ADD = 'Thought: add them\nAction: calc.add[{"a": 2, "b": 40}]'
DONE = "Thought: done\nAction: finish[42]"


@pytest.fixture
def remote() -> Iterator[RemoteMcp]:
    with RemoteMcp() as server:
        yield server


def settings(remote: RemoteMcp, allowed: str = "python,calc.add,finish") -> dict[str, Any]:
    return {"mcp_servers": f"calc={remote.url}", "allowed_actions": allowed, "mcp_timeout_s": 3}


async def test_actions_show_every_remote_tool_and_which_are_allowed(
    app_client: AppFactory, remote: RemoteMcp
) -> None:
    async with app_client(FakeOpenAI(), **settings(remote)) as client:
        listed = {a["name"]: a for a in (await client.get("/actions")).json()}
    assert [name for name, a in listed.items() if a["allowed"]] == ["python", "calc.add", "finish"]
    assert not listed["calc.echo"]["allowed"] and not listed["calc.slow"]["allowed"]
    assert "search" not in listed  # a built-in action outside the allow-list stays hidden
    assert listed["calc.add"]["input"] == 'JSON {"a": integer, "b": integer}'
    assert listed["calc.add"]["available"]


async def test_a_react_run_calls_an_allowed_remote_tool(
    app_client: AppFactory, remote: RemoteMcp
) -> None:
    fake = FakeOpenAI(scenarios=[Scenario("2 + 40", steps=[ADD, DONE])])
    async with app_client(fake, **settings(remote)) as client:
        body = (await client.post("/ask", json={"question": "What is 2 + 40?"})).json()
    assert body["status"] == "finished" and body["answer"] == "42"
    assert body["steps"][0]["action"] == "calc.add"
    assert body["steps"][0]["observation"] == "42"
    prompt = fake.requests[0].messages[0]["content"]
    assert "calc.add" in prompt and "calc.echo" not in prompt  # only allowed tools offered


async def test_a_remote_tool_that_is_not_allowed_is_never_called(
    app_client: AppFactory, remote: RemoteMcp
) -> None:
    echo = "Thought: echo\nAction: calc.echo[leak this]"
    fake = FakeOpenAI(scenarios=[Scenario("echo it", steps=[echo, DONE])])
    async with app_client(fake, **settings(remote)) as client:
        body = (await client.post("/ask", json={"question": "echo it"})).json()
        refused = await client.post("/ask", json={"question": "q", "actions": ["calc.echo"]})
    assert body["steps"][0]["action"] == "calc.echo"
    assert "not allowed" in body["steps"][0]["observation"]
    assert refused.status_code == 403


async def test_native_tool_calls_reach_a_remote_tool(
    app_client: AppFactory, remote: RemoteMcp
) -> None:
    call = ToolCallReply("calc__add", {"arguments": '{"a": 2, "b": 40}'}, thought="add")
    finish = ToolCallReply("finish", {"answer": "42"})
    steps = [call, finish]
    fake = FakeOpenAI(scenarios=[Scenario("2 + 40", steps=steps)], tool_calls=True)  # type: ignore[list-item]
    async with app_client(fake, agent_protocol="tools", **settings(remote)) as client:
        body = (await client.post("/ask", json={"question": "What is 2 + 40?"})).json()
    first = next(r for r in fake.chat_requests if "2 + 40" in r.text)
    names = [tool["function"]["name"] for tool in first.tools]
    assert "calc__add" in names  # function names allow no dots
    assert body["steps"][0]["action"] == "calc.add" and body["steps"][0]["observation"] == "42"
    assert body["answer"] == "42"


async def test_a_run_goes_on_when_the_server_is_down(
    app_client: AppFactory, remote: RemoteMcp
) -> None:
    fake = FakeOpenAI(scenarios=[Scenario("2 + 40", steps=[ADD, DONE])])
    async with app_client(fake, **settings(remote)) as client:
        remote.stop()
        body = (await client.post("/ask", json={"question": "What is 2 + 40?"})).json()
    assert body["status"] == "finished"
    assert "the MCP server 'calc' cannot be reached" in body["steps"][0]["observation"]


async def test_the_service_starts_while_an_allowed_server_is_down(
    app_client: AppFactory, remote: RemoteMcp
) -> None:
    remote.stop()
    async with app_client(FakeOpenAI(), **settings(remote)) as client:
        listed = {a["name"]: a for a in (await client.get("/actions")).json()}
    assert listed["calc.add"]["allowed"] and not listed["calc.add"]["available"]
    assert "not been reached" in listed["calc.add"]["unavailable_reason"]


async def test_an_allowed_action_of_no_configured_server_stops_the_start(
    app_client: AppFactory,
) -> None:
    with pytest.raises(ValueError, match=r"unknown actions: calc\.add"):
        async with app_client(FakeOpenAI(), allowed_actions="calc.add,finish"):
            pass
