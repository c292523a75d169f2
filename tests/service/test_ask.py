"""POST /ask end to end through the real ASGI app, the real openai client and sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from tests.fakes import FakeOpenAI, Scenario
from tests.fakes.search import FakeSearchProvider
from tests.service.conftest import AppFactory
from tools.base import ToolUnavailable

PROBLEM = "application/problem+json"


async def test_react_run_with_python_returns_answer_and_trace(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        scenarios=[
            Scenario(
                "1234 * 5678",
                steps=[
                    "Thought: multiply exactly\nAction: python[print(1234 * 5678)]",
                    "Thought: done\nAction: finish[7006652]",
                ],
            )
        ]
    )
    async with app_client(fake) as client:
        response = await client.post("/ask", json={"question": "What is 1234 * 5678?"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "finished" and body["answer"] == "7006652"
        assert body["steps"][0]["action"] == "python"
        assert body["steps"][0]["observation"].strip() == "7006652"
        assert body["usage"]["llm_calls"] == 2 and body["usage"]["prompt_tokens"] > 0
        stored = await client.get(f"/runs/{body['run_id']}")
        assert stored.status_code == 200
        assert stored.json()["answer"] == "7006652"
        assert stored.json()["steps"] == body["steps"]


async def test_pal_mode(app_client: AppFactory) -> None:
    program = "def solution():\n    return 1234 * 5678\n"
    fake = FakeOpenAI(default=f"```python\n{program}```")
    async with app_client(fake) as client:
        response = await client.post(
            "/ask", json={"question": "What is 1234 * 5678?", "mode": "pal"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["answer"] == "7006652"
        assert body["steps"][0]["action"] == "python"
        assert "1234 * 5678" in body["steps"][0]["action_input"]


async def test_request_cannot_widen_the_allow_list(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(), allowed_actions="python,finish") as client:
        response = await client.post("/ask", json={"question": "q", "actions": ["search"]})
        assert response.status_code == 403
        assert response.headers["content-type"].startswith(PROBLEM)
        assert "search" in response.json()["detail"]
        shell = await client.post("/ask", json={"question": "q", "actions": ["shell"]})
        assert shell.status_code == 403


async def test_request_narrows_the_allow_list(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: t\nAction: python[print(1)]",
            "Thought: t\nAction: finish[ok]",
        ]
    )
    async with app_client(fake) as client:
        response = await client.post("/ask", json={"question": "q", "actions": ["search"]})
        body = response.json()
        assert body["steps"][0]["action"] == "python"
        assert "not allowed" in body["steps"][0]["observation"]
        assert body["answer"] == "ok"


async def test_bad_input_is_a_clear_422(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(), max_question_chars=50) as client:
        for payload in (
            {},
            {"question": "   "},
            {"question": "q", "mode": "chat"},
            {"question": "q", "max_steps": 0},
            {"question": "q", "unknown": 1},
            {"question": "x" * 51},
            {"question": "q", "mode": "pal", "samples": 100},
        ):
            response = await client.post("/ask", json=payload)
            assert response.status_code == 422, payload
            assert response.headers["content-type"].startswith(PROBLEM)
            assert response.json()["detail"]
        not_json = await client.post(
            "/ask", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422


async def test_oversized_body_is_refused(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI()) as client:
        response = await client.post(
            "/ask", content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413


async def test_oversized_chunked_body_is_refused(app_client: AppFactory) -> None:
    """No Content-Length (chunked): the size is only known while reading, and still 413."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"question": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    async with app_client(FakeOpenAI()) as client:
        response = await client.post(
            "/ask", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_llm_failures_are_502_and_stored(app_client: AppFactory) -> None:
    reasons = {
        "500": "llm_unavailable",
        "garbage": "llm_bad_response",
        "429": "llm_rate_limited",
        "connect": "llm_unavailable",
    }
    for kind, reason in reasons.items():
        fake = FakeOpenAI()
        fake.fail(kind, times=20)
        async with app_client(fake) as client:
            response = await client.post("/ask", json={"question": "q"})
            assert response.status_code == 502, (kind, response.text)
            problem = response.json()
            assert problem["detail"].startswith("the LLM backend")
            assert problem["reason"] == reason
            assert FakeOpenAI.base_url not in response.text  # upstream details: the log only
            stored = await client.get(f"/runs/{problem['run_id']}")
            assert stored.json()["status"] == "error"
            assert stored.json()["error"] == problem["detail"]


async def test_deadline_is_504_whatever_the_backend_does(app_client: AppFactory) -> None:
    fake = FakeOpenAI()
    fake.fail("hang", times=5)
    async with app_client(fake, llm_options={"timeout_s": 30}) as client:
        started = time.monotonic()
        response = await client.post("/ask", json={"question": "q", "timeout_s": 0.5})
        assert time.monotonic() - started < 3
        assert response.status_code == 504
        run = await client.get(f"/runs/{response.json()['run_id']}")
        assert run.json()["status"] == "timeout"


async def test_search_failure_is_an_observation(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: look\nAction: search[anything]",
            "Thought: fine\nAction: finish[from memory]",
        ]
    )
    search = FakeSearchProvider(unavailable=True)
    async with app_client(fake, search=search) as client:
        body = (await client.post("/ask", json={"question": "q"})).json()
        assert body["status"] == "finished"
        assert "unavailable" in body["steps"][0]["observation"]


async def test_step_budget_returns_best_answer(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=lambda req: (
            "Thought: best\nAction: finish[partial answer]"
            if "no more actions can run" in req.text
            else f"Thought: more\nAction: python[print({len(req.messages)})]"
        )
    )
    async with app_client(fake) as client:
        body = (await client.post("/ask", json={"question": "q", "max_steps": 2})).json()
        assert body["status"] == "max_steps"
        assert body["answer"] == "partial answer"
        assert len(body["steps"]) == 3


async def test_server_caps_max_steps(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=lambda req: (
            "Action: finish[x]"
            if "no more actions can run" in req.text
            else f"Action: python[print({len(req.messages)})]"
        )
    )
    async with app_client(fake, max_steps_limit=3, default_max_steps=2) as client:
        body = (await client.post("/ask", json={"question": "q", "max_steps": 50})).json()
        assert len(body["steps"]) == 4  # 3 steps and the final answer


async def test_streaming_sends_steps_then_final(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: t\nAction: python[print(2 + 2)]",
            "Thought: done\nAction: finish[4]",
        ]
    )
    payload = {"question": "q", "stream": True}
    async with app_client(fake) as client, client.stream("POST", "/ask", json=payload) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = "".join([chunk async for chunk in resp.aiter_text()])
    events = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("event:")
    ]
    assert events[0] == "run" and events[-1] == "final"
    assert {"thought", "action", "observation"} <= set(events)
    final = json.loads([line for line in text.splitlines() if line.startswith("data:")][-1][5:])
    assert final["answer"] == "4" and final["status"] == "finished"


async def test_metrics_keys_keep_the_counters_from_tenants(app_client: AppFactory) -> None:
    """Red-team pass X: ``/metrics`` counts every tenant's runs, tokens and failed keys, and any
    tenant's key read it. With ``METRICS_KEYS`` set, only those keys do, and they read
    nothing else; without it, any API key still does."""
    tenant, operator = "t" * 20, "m" * 20
    as_tenant = {"authorization": f"Bearer {tenant}"}
    as_operator = {"authorization": f"Bearer {operator}"}
    async with app_client(FakeOpenAI(), agent_api_keys=tenant, metrics_keys=operator) as client:
        assert (await client.get("/metrics", headers=as_tenant)).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
        metrics = await client.get("/metrics", headers=as_operator)
        assert metrics.status_code == 200 and "reactpal_runs_total" in metrics.text
        assert (await client.get("/runs", headers=as_operator)).status_code == 401
        assert (await client.get("/runs", headers=as_tenant)).status_code == 200
    async with app_client(FakeOpenAI(), agent_api_keys=tenant) as client:
        assert (await client.get("/metrics", headers=as_tenant)).status_code == 200


async def test_api_keys(app_client: AppFactory) -> None:
    key = "k" * 20
    async with app_client(FakeOpenAI(), agent_api_keys=key) as client:
        assert (await client.get("/healthz")).status_code == 200
        missing = await client.post("/ask", json={"question": "q"})
        assert missing.status_code == 401
        assert missing.headers["content-type"].startswith(PROBLEM)
        wrong = await client.get("/actions", headers={"authorization": "Bearer " + "x" * 20})
        assert wrong.status_code == 401
        ok = await client.get("/actions", headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        # The documentation is public (a browser cannot send a key); what it describes is not.
        for page in ("/openapi.json", "/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"):
            assert (await client.get(page)).status_code == 200, page


async def test_rate_limit(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(default="Action: finish[x]"), rate_limit="2/minute") as c:
        codes = [(await c.post("/ask", json={"question": "q"})).status_code for _ in range(3)]
        assert codes == [200, 200, 429]


async def test_other_endpoints(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(default="Action: finish[x]")) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["sandbox"]["layers"]["process"] is True
        names = [a["name"] for a in (await client.get("/actions")).json()]
        assert names == ["python", "search", "finish"]
        await client.post("/ask", json={"question": "q"})
        metrics = (await client.get("/metrics")).text
        assert 'reactpal_runs_total{mode="react",status="finished"} 1.0' in metrics
        schema = (await client.get("/openapi.json")).json()
        assert "/ask" in schema["paths"]
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/runs/0123abcd")).status_code == 404


async def test_pal_self_consistency_reports_votes(app_client: AppFactory) -> None:
    greedy = "```python\ndef solution():\n    return 8\n```"
    sampled = [
        "```python\ndef solution():\n    return 8.0\n```",
        "```python\ndef solution():\n    return 9\n```",
    ]
    # The greedy sample on its own, the other two in one call with n=2.
    fake = FakeOpenAI(lambda req: greedy if req.temperature == 0.0 else sampled)
    async with app_client(fake) as client:
        response = await client.post(
            "/ask", json={"question": "How many?", "mode": "pal", "samples": 3}
        )
        body = response.json()
        assert response.status_code == 200, body
        assert body["answer"] == "8"
        details = body["details"]
        assert details["votes"][0] == {"answer": "8", "count": 2}
        # 9 may be cut short: once 8 has two votes, the third sample cannot change the winner.
        assert details["drawn"] in (2, 3) and len(body["steps"]) == details["drawn"]
        assert abs(details["agreement"] - 2 / details["drawn"]) < 1e-3
        assert sorted(r.n for r in fake.chat_requests) == [1, 2]


async def test_pal_needs_python_allowed(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(), allowed_actions="search,finish") as client:
        response = await client.post("/ask", json={"question": "q", "mode": "pal"})
        assert response.status_code == 403


async def test_request_fields_take_only_their_json_types(app_client: AppFactory) -> None:
    """Found by the schema fuzzing: lax coercion let ``"verbalize": 0`` or ``"max_steps": "5"``
    through, though the published schema says boolean and integer. An integral float is still
    an integer, as in JSON Schema."""
    async with app_client(FakeOpenAI(default="Action: finish[x]")) as client:
        for payload in (
            {"question": "q", "stream": 0},
            {"question": "q", "mode": "pal", "verbalize": "yes"},
            {"question": "q", "max_steps": "5"},
            {"question": "q", "max_steps": True},
            {"question": "q", "mode": "pal", "samples": 2.5},
            {"question": "q", "timeout_s": "30"},
        ):
            response = await client.post("/ask", json=payload)
            assert response.status_code == 422, payload
            assert response.headers["content-type"].startswith(PROBLEM)
        ok = await client.post("/ask", json={"question": "q", "max_steps": 2.0, "timeout_s": 30})
        assert ok.status_code == 200, ok.text


async def test_a_newcomers_mistakes_get_errors_that_say_what_to_send(
    app_client: AppFactory,
) -> None:
    """From issue 15: what a first hour with the API produced, each answered clearly."""
    async with app_client(FakeOpenAI(default="Action: finish[x]")) as client:
        index = await client.get("/")
        assert index.status_code == 200 and index.json()["docs"] == "/docs"
        assert index.json()["try"]["path"] == "/ask"
        as_text = await client.post(
            "/ask", content='{"question": "q"}', headers={"content-type": "text/plain"}
        )
        assert as_text.status_code == 422
        assert "Content-Type: application/json" in as_text.json()["detail"]
        assert "text/plain" in as_text.json()["detail"]
        broken = await client.post(
            "/ask", content='{"question": "q",}', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422
        assert "invalid JSON at character 17" in broken.json()["detail"], broken.json()
        empty = await client.post("/ask", json={"question": "q", "actions": []})
        assert empty.status_code == 422 and "actions" in empty.json()["detail"]
        capital = await client.post("/ask", json={"question": "q", "actions": ["Python"]})
        assert capital.status_code == 200, capital.text
        pal = await client.post(
            "/ask", json={"question": "q", "mode": "pal", "actions": ["search"]}
        )
        assert pal.status_code == 422 and "include 'python'" in pal.json()["detail"]


async def test_one_question_limit_published_and_enforced(app_client: AppFactory) -> None:
    """From issue 15: the schema advertised 100,000 characters and the server said 4,000;
    now one limit, one message, whatever the length."""
    async with app_client(FakeOpenAI(default="Action: finish[x]"), max_question_chars=500) as c:
        schema = (await c.get("/openapi.json")).json()
        assert (
            schema["components"]["schemas"]["AskRequest"]["properties"]["question"]["maxLength"]
            == 500
        )
        # the blanks around it count, as maxLength counts them (the fuzzing found one
        # past the limit by its leading blanks taken, once stripped)
        for question in ("x" * 501, "x" * 200_000, "\u2007 " + "x" * 499):
            response = await c.post("/ask", json={"question": question})
            assert response.status_code == 422
            assert response.json()["detail"] == (
                "question is longer than the limit of 500 characters"
            )
        assert (await c.post("/ask", json={"question": "x" * 500})).status_code == 200


async def test_the_samples_limit_is_published_and_enforced_in_any_mode(
    app_client: AppFactory,
) -> None:
    """Pass EY: the schema said 64 and the server refused past 8 (in pal mode only)."""
    async with app_client(FakeOpenAI(default="Action: finish[x]"), max_samples=3) as c:
        schema = (await c.get("/openapi.json")).json()
        assert schema["components"]["schemas"]["AskRequest"]["properties"]["samples"] == {
            **schema["components"]["schemas"]["AskRequest"]["properties"]["samples"],
            "maximum": 3,
        }
        for mode in ("pal", "react"):
            response = await c.post("/ask", json={"question": "q", "mode": mode, "samples": 4})
            assert response.status_code == 422, response.text
            assert response.json()["detail"] == "samples is above the server's limit of 3"
        assert (await c.post("/ask", json={"question": "q", "samples": 3})).status_code == 200


class OfflineSearch(FakeSearchProvider):
    """A provider whose engine cannot be reached, as on a machine with no internet."""

    async def reachable(self, timeout_s: float) -> None:
        raise ToolUnavailable("duckduckgo.com cannot be reached (Name or service not known)")


async def test_search_that_cannot_be_reached_is_left_out_and_readyz_says_so(
    app_client: AppFactory,
) -> None:
    """Offline: the model is not offered search (it would call it, then take the error for
    an answer); the service is still ready, and /readyz and the run's details say why."""
    fake = FakeOpenAI(default="Thought: I know this.\nAction: finish[7417]")
    async with app_client(fake, search=OfflineSearch()) as client:
        # The first run already knows: the probe starts with the service.
        body = (await client.post("/ask", json={"question": "Days from 1969-07-20?"})).json()
        ready = await client.get("/readyz")
        listed = {a["name"]: a for a in (await client.get("/actions")).json()}
    assert ready.status_code == 200
    reason = "duckduckgo.com cannot be reached (Name or service not known)"
    assert ready.json()["checks"]["search"] == {"ok": False, "required": False, "reason": reason}
    assert (body["status"], body["answer"]) == ("finished", "7417")
    assert body["details"] == {"unavailable_actions": {"search": reason}}
    system = fake.chat_requests[0].messages[0]["content"]
    assert "python[" in system and "search[" not in system
    assert (listed["search"]["available"], listed["search"]["unavailable_reason"]) == (
        False,
        reason,
    )
    assert (listed["python"]["available"], listed["python"]["unavailable_reason"]) == (True, None)


async def test_a_method_not_allowed_names_the_methods_that_are(app_client: AppFactory) -> None:
    """Red-team pass CV: the 405's Allow header was empty (the routers included with
    include_router were not walked); RFC 9110 asks for the list."""
    async with app_client(FakeOpenAI()) as client:
        for method, path, allowed in (
            ("PUT", "/ask", "POST"),
            ("DELETE", "/runs", "GET, POST"),
            ("PATCH", "/threads/abc", "DELETE, GET"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == allowed, (method, path)
