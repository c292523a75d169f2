"""``/mcp`` driven by the MCP SDK's own client: through the ASGI app, and over real HTTP
against ``python -m service``. Every tool call is a stored run, under the same keys,
allow-list and limits as ``/ask``; Host and Origin are checked against DNS rebinding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from service.app import create_app
from service.settings import Settings
from tests.fakes import FakeOpenAI, Scenario, make_llm
from tests.service.conftest import AppFactory
from tests.service.live import ANSWER, PAL_TAG, QUESTION, FakeLLM, serve
from tools.sandbox import Sandbox

URL = "http://127.0.0.1:8000/mcp"
KEY = "mcp-test-key-0123456789"
PROGRAM = "def solution():\n    return 1234 * 5678\n"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def react_fake() -> FakeOpenAI:
    return FakeOpenAI(
        scenarios=[
            Scenario(
                "1234 * 5678",
                steps=[
                    "Thought: multiply exactly\nAction: python[print(1234 * 5678)]",
                    "Thought: done\nAction: finish[7006652]",
                ],
            )
        ],
        default=f"```python\n{PROGRAM}```",
    )


@asynccontextmanager
async def mcp_client(http: httpx2.AsyncClient, url: str = URL) -> AsyncIterator[Client]:
    async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
        yield client


async def test_tools_are_listed_with_their_arguments(app_client: AppFactory) -> None:
    async with app_client(react_fake()) as http, mcp_client(http) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"ask", "pal", "python"}
    assert set(tools["ask"].input_schema["properties"]) == {
        "question",
        "actions",
        "max_steps",
        "thread_id",
    }
    assert tools["ask"].input_schema["required"] == ["question"]
    assert set(tools["pal"].input_schema["properties"]) == {"question", "samples", "task"}
    # the server's limit, which it enforces (pass FA: 64 published, 8 enforced)
    assert tools["pal"].input_schema["properties"]["samples"]["maximum"] == 8
    assert tools["python"].input_schema["required"] == ["code"]


async def test_each_tool_answers_and_its_call_is_a_stored_run(app_client: AppFactory) -> None:
    async with app_client(react_fake()) as http, mcp_client(http) as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("ask", {"question": "What is 1234 * 5678?", "actions": ["python"]}),
            ("pal", {"question": "What is 1234 times 5678?"}),
            ("python", {"code": PROGRAM}),
        ]
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            assert not result.is_error, (name, result)
            assert result.content[0].text == "7006652"  # type: ignore[union-attr]
            summary = result.structured_content
            assert summary["status"] == "finished" and summary["answer"] == "7006652"
            stored = (await http.get(f"/runs/{summary['run_id']}")).json()
            assert stored["answer"] == "7006652", name
            assert stored["steps"][0]["action"] == "python"
        assert stored["mode"] == "pal" and stored["steps"][0]["action_input"] == PROGRAM
        assert stored["usage"]["llm_calls"] == 0  # the python tool runs no model


async def test_a_failing_program_is_an_error_result_not_an_answer(
    app_client: AppFactory,
) -> None:
    async with app_client(react_fake()) as http, mcp_client(http) as client:
        result = await client.call_tool("python", {"code": "x = 1 / 0"})
    assert result.is_error
    assert "ZeroDivisionError" in result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content["status"] == "error"


async def test_a_program_too_long_for_the_sandbox_is_refused_unrecorded(
    app_client: AppFactory,
) -> None:
    """Pass CV: a 600,000-character program was stored twice (question and step) before
    the sandbox refused it, 60 calls a minute."""
    async with app_client(react_fake()) as http, mcp_client(http) as client:
        result = await client.call_tool("python", {"code": "x = 1\n" + "#" * 70_000})
        assert result.is_error
        assert "longer than the sandbox takes" in result.content[0].text  # type: ignore[union-attr]
        assert (await http.get("/runs")).json()["runs"] == []


async def test_a_programs_errors_speak_of_code(app_client: AppFactory) -> None:
    """Pass EY: the python tool's program is checked as a question is, and its errors said
    "invalid question: question must not be blank"."""
    async with app_client(react_fake()) as http, mcp_client(http) as client:
        for code, said in (("   ", "code must not be blank"), ("x\x00", "code contains")):
            result = await client.call_tool("python", {"code": code})
            text = result.content[0].text  # type: ignore[union-attr]
            assert result.is_error and said in text and "question" not in text, text
        # a form feed is Python's whitespace (pass FA: refused as a control character)
        fed = await client.call_tool("python", {"code": "x = 6 * 7\f\nprint(x)"})
        assert not fed.is_error and fed.content[0].text == "42", fed  # type: ignore[union-attr]


async def test_no_stream_is_opened_from_server_to_client(app_client: AppFactory) -> None:
    """Pass CV: stateless, the server never sends anything on GET's stream, which the SDK
    kept open for ever with pings: a 405, as the specification allows."""
    async with app_client(react_fake()) as http:
        response = await http.get("/mcp", headers={"accept": "text/event-stream"})
        assert response.status_code == 405 and response.headers["allow"] == "DELETE, POST"


async def test_the_allow_list_holds(app_client: AppFactory) -> None:
    async with (
        app_client(react_fake(), allowed_actions="search,finish") as http,
        mcp_client(http) as client,
    ):
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"ask"}  # no python: neither pal nor python is offered
        refused = await client.call_tool("ask", {"question": "q", "actions": ["python"]})
        assert refused.is_error
        assert "not allowed" in refused.content[0].text  # type: ignore[union-attr]
        runs = (await http.get("/runs")).json()["runs"]
        assert runs == []  # refused before anything was recorded


async def test_bad_arguments_are_a_clear_error(app_client: AppFactory) -> None:
    async with app_client(react_fake()) as http, mcp_client(http) as client:
        result = await client.call_tool("ask", {"question": ""})
        assert result.is_error and "question" in result.content[0].text  # type: ignore[union-attr]
        result = await client.call_tool("pal", {"question": "q", "samples": 1000})
        assert result.is_error


async def test_keys_are_required_and_runs_belong_to_their_key(app_client: AppFactory) -> None:
    async with app_client(react_fake(), agent_api_keys=f"{KEY},other-key-0123456789") as http:
        refused = await http.post(URL, json=INITIALIZE, headers=MCP_HEADERS)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        http.headers["Authorization"] = f"Bearer {KEY}"
        async with mcp_client(http) as client:
            result = await client.call_tool("python", {"code": PROGRAM})
        run_id = result.structured_content["run_id"]
        assert (await http.get(f"/runs/{run_id}")).status_code == 200
        other = {"Authorization": "Bearer other-key-0123456789"}
        assert (await http.get(f"/runs/{run_id}", headers=other)).status_code == 404


async def test_dns_rebinding_and_cross_origin_requests_are_refused(
    app_client: AppFactory,
) -> None:
    async with app_client(react_fake()) as http:
        ok = await http.post(URL, json=INITIALIZE, headers=MCP_HEADERS)
        assert ok.status_code == 200, ok.text
        # A page on attacker.example whose name now resolves to 127.0.0.1.
        rebound = {**MCP_HEADERS, "Host": "attacker.example:8000"}
        assert (await http.post(URL, json=INITIALIZE, headers=rebound)).status_code in (400, 403)
        evil = {**MCP_HEADERS, "Origin": "http://attacker.example"}
        response = await http.post(URL, json=INITIALIZE, headers=evil)
        assert response.status_code == 403
        assert "cross-origin" in response.json()["detail"]
        local = {**MCP_HEADERS, "Origin": "http://localhost:3000"}
        assert (await http.post(URL, json=INITIALIZE, headers=local)).status_code == 200
    async with app_client(react_fake(), agent_api_keys=KEY) as http:
        keyed = {**MCP_HEADERS, "Authorization": f"Bearer {KEY}"}
        other_port = {**keyed, "Origin": "http://127.0.0.1:3000"}
        assert (await http.post(URL, json=INITIALIZE, headers=other_port)).status_code == 403
        same = {**keyed, "Origin": "http://127.0.0.1:8000"}
        assert (await http.post(URL, json=INITIALIZE, headers=same)).status_code == 200


def test_over_real_http_with_a_key(tmp_path: Any) -> None:
    """The SDK's client against a real uvicorn (``python -m service``) and a real model
    server (``FakeLLM``): list the tools, call each."""
    import asyncio

    with (
        FakeLLM() as llm,
        serve(tmp_path, llm_url=llm.url, AGENT_API_KEYS=KEY) as service,
    ):

        async def session() -> dict[str, str]:
            headers = {"Authorization": f"Bearer {KEY}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=30) as http,
                mcp_client(http, f"{service.base_url}/mcp") as client,
            ):
                names = sorted(t.name for t in (await client.list_tools()).tools)
                answers = {"tools": ",".join(names)}
                for name, arguments in (
                    ("ask", {"question": QUESTION}),
                    ("pal", {"question": f"{QUESTION} {PAL_TAG}"}),
                    ("python", {"code": PROGRAM}),
                ):
                    result = await client.call_tool(name, arguments)
                    answers[name] = result.content[0].text  # type: ignore[union-attr]
                return answers

        answers = asyncio.run(session())
    assert answers == {"tools": "ask,pal,python", "ask": ANSWER, "pal": ANSWER, "python": ANSWER}


async def test_the_endpoint_lives_with_each_lifespan_of_the_app(
    sandbox: Sandbox, settings_for: Callable[..., Settings]
) -> None:
    """An app's lifespan may run more than once (tests, the schema fuzzing); the SDK's session
    manager runs only once, so each lifespan gets its own. Outside one, /mcp is a 503."""
    fake = FakeOpenAI(default="Thought: done\nAction: finish[hi]")
    app = create_app(settings_for(), llm=make_llm(fake), sandbox=sandbox)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://localhost") as http:
        for _ in range(2):  # (the first lifespan closes the sandbox: no program runs here)
            async with app.router.lifespan_context(app), mcp_client(http) as client:
                result = await client.call_tool("ask", {"question": "Say hi."})
                assert result.content[0].text == "hi"  # type: ignore[union-attr]
        outside = await http.post(URL, json=INITIALIZE, headers=MCP_HEADERS)
    assert outside.status_code == 503
