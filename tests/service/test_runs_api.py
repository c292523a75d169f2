"""Runs as resources, through the real ASGI app and the real ``openai`` client: background
runs, status at any moment, cancel (in an LLM call, in a sandbox run, while queued), event
replay from any point, threads with memory, feedback, and ownership by API key."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from service import store as store_module
from service.routes import feedback as feedback_routes
from tests.fakes import FakeOpenAI, Fault
from tests.service.conftest import AppFactory
from tests.service.live import cpu_ticks, descendants

KEY_A = "a" * 24
KEY_B = "b" * 24
A = {"authorization": f"Bearer {KEY_A}"}
B = {"authorization": f"Bearer {KEY_B}"}
FINISH = "Thought: I know it.\nAction: finish[42]"
SPIN = "Thought: compute\nAction: python[while True:\n    pass]"


async def wait_for(client: httpx2.AsyncClient, run_id: str, *statuses: str, **kw: Any) -> dict:
    """The run once its status is one of ``statuses`` (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        run = (await client.get(f"/runs/{run_id}", **kw)).json()
        if run["status"] in statuses:
            return dict(run)
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.02)


def _busy(pid: int) -> bool:
    """Whether ``pid`` runs at all over 0.3 s (an idle template uses no CPU; a spinning
    program, even on a loaded machine, a good part of it)."""
    try:
        before = cpu_ticks(pid)
        time.sleep(0.3)
        return cpu_ticks(pid) - before >= 3
    except (OSError, ValueError, TypeError):
        return False  # it ended


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def sse(text: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of each server-sent event in ``text``."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        if "event" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


async def test_a_background_run_is_accepted_then_read_and_replayed(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: compute\nAction: python[print(6 * 7)]",
            "Thought: done\nAction: finish[42]",
        ]
    )
    async with app_client(fake) as client:
        started = await client.post("/runs", json={"question": "What is 6*7?"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert started.headers["location"] == f"/runs/{run_id}"
        run = await wait_for(client, run_id, "finished")
        assert run["answer"] == "42" and run["usage"]["llm_calls"] == 2
        replay = sse((await client.get(f"/runs/{run_id}/events")).text)
        assert [event for _, event, _ in replay] == [
            "run",
            "thought",
            "action",
            "observation",
            "thought",
            "action",
            "final",
        ]
        assert [seq for seq, _, _ in replay] == list(range(1, 8))
        assert replay[-1][2]["answer"] == "42" and replay[-1][2]["run_id"] == run_id
        for n in range(len(replay) + 1):  # resume after every event: nothing lost or repeated
            by_header = sse(
                (await client.get(f"/runs/{run_id}/events", headers={"last-event-id": str(n)})).text
            )
            by_query = sse((await client.get(f"/runs/{run_id}/events?after={n}")).text)
            assert by_header == by_query == replay[n:]
        # an EventSource opened on ?after=1 reconnects there with the last id it saw (pass FA)
        for after, header, resumed in ((1, "4", 4), (5, "2", 5)):
            path = f"/runs/{run_id}/events?after={after}"
            both = await client.get(path, headers={"last-event-id": header})
            assert sse(both.text) == replay[resumed:]
        # digits to str.isdigit that int() refuses ("²", a 500), and past the store's integers
        # (an aborted stream): a 422 that says what to send (pass EY)
        for bad in (b"\xb2", b"99999999999999999999", b"1000001", b"-1", b"1.5", b"\xd9\xa3"):
            refused = await client.get(f"/runs/{run_id}/events", headers={"last-event-id": bad})
            assert refused.status_code == 422, (bad, refused.text)
            assert "sequence number (0 to 1,000,000)" in refused.json()["detail"], refused.text
        listed = (await client.get("/runs")).json()
        assert [r["run_id"] for r in listed["runs"]] == [run_id]
        assert (await client.get("/runs?status=running")).json()["runs"] == []


async def test_the_ask_stream_uses_the_same_event_ids(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(default=FINISH)) as client:
        streamed = sse((await client.post("/ask", json={"question": "q", "stream": True})).text)
        run_id = streamed[0][2]["run_id"]
        assert sse((await client.get(f"/runs/{run_id}/events")).text) == streamed


async def test_cancel_during_an_llm_call(app_client: AppFactory) -> None:
    fake = FakeOpenAI(default=FINISH)
    fake.fail("hang", times=1)
    async with app_client(fake) as client:
        run_id = (await client.post("/runs", json={"question": "q"})).json()["run_id"]
        await wait_for(client, run_id, "running")
        await until(lambda: fake.calls > 0)
        started = time.monotonic()
        cancelled = await client.post(f"/runs/{run_id}/cancel")
        assert time.monotonic() - started < 1.0
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["error"]) == (
            "cancelled",
            "the run was cancelled",
        )
        again = await client.post(f"/runs/{run_id}/cancel")
        assert again.status_code == 409 and "already ended (cancelled)" in again.json()["detail"]
        final = sse((await client.get(f"/runs/{run_id}/events")).text)[-1]
        assert final[1] == "final" and final[2]["status"] == "cancelled"


async def test_cancel_during_a_sandbox_run(app_client: AppFactory) -> None:
    fake = FakeOpenAI(script=[SPIN, FINISH])
    async with app_client(fake, sandbox_timeout_s=30) as client:
        run_id = (await client.post("/runs", json={"question": "q", "actions": ["python"]})).json()[
            "run_id"
        ]
        await wait_for(client, run_id, "running")
        await until(lambda: fake.calls > 0)
        await asyncio.sleep(0.3)  # the program is spinning in the sandbox now
        during = (await client.get(f"/runs/{run_id}")).json()
        # The LLM call's usage and the action it chose are stored before the action ends.
        assert during["usage"]["llm_calls"] == 1 and during["usage"]["prompt_tokens"] > 0
        assert during["steps"][0]["action"] == "python"
        started = time.monotonic()
        cancelled = (await client.post(f"/runs/{run_id}/cancel")).json()
        assert time.monotonic() - started < 1.0
        assert cancelled["status"] == "cancelled"
        assert cancelled["steps"][0]["action"] == "python"  # what it had is kept
        assert cancelled["steps"][0]["observation"] is None
        # The program's process was killed, not left spinning until its own deadline.
        await asyncio.sleep(0.3)
        spinning = [pid for pid in descendants(os.getpid()) if _busy(pid)]
        assert spinning == [], spinning
        after = await client.post("/ask", json={"question": "again", "actions": ["python"]})
        assert after.status_code == 200  # the sandbox serves the next run


async def test_past_max_concurrent_runs_a_503_with_retry_after_and_nothing_recorded(
    app_client: AppFactory,
) -> None:
    """Issue 11: a run past MAX_CONCURRENT_RUNS is refused at once, never queued behind the
    others (a pile-up); the slot comes back when a run ends, however it ends."""
    fake = FakeOpenAI(default=FINISH)
    fake.fail("hang", times=1)
    async with app_client(fake, max_concurrent_runs=1) as client:
        first = (await client.post("/runs", json={"question": "first"})).json()["run_id"]
        await wait_for(client, first, "running")
        for path in ("/runs", "/ask"):
            refused = await client.post(path, json={"question": "second"})
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert "MAX_CONCURRENT_RUNS" in refused.json()["detail"]
        listed = (await client.get("/runs")).json()["runs"]
        assert [run["run_id"] for run in listed] == [first]  # the refused ones left no trace
        assert fake.calls == 1
        assert (await client.post(f"/runs/{first}/cancel")).json()["status"] == "cancelled"
        again = await client.post("/ask", json={"question": "third"})
        assert again.status_code == 200, again.text  # the cancelled run gave its slot back
        assert (await client.post("/ask", json={"question": "fourth"})).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'reactpal_requests_rejected_total{reason="server_busy"} 2.0' in metrics


async def test_one_client_cannot_take_every_slot(app_client: AppFactory) -> None:
    """MAX_CONCURRENT_RUNS_PER_CLIENT: a client (its API key) past its share gets a 429 with
    ``Retry-After`` while another client still gets in."""
    keys = ("a" * 20, "b" * 20)
    fake = FakeOpenAI(default=FINISH)
    fake.fail("hang", times=1)
    async with app_client(
        fake, agent_api_keys=",".join(keys), max_concurrent_runs=4, max_concurrent_runs_per_client=1
    ) as client:
        alice = {"Authorization": f"Bearer {keys[0]}"}
        bob = {"Authorization": f"Bearer {keys[1]}"}
        first = await client.post("/runs", json={"question": "first"}, headers=alice)
        run_id = first.json()["run_id"]
        await wait_for(client, run_id, "running", headers=alice)
        refused = await client.post("/ask", json={"question": "more"}, headers=alice)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "MAX_CONCURRENT_RUNS_PER_CLIENT" in refused.json()["detail"]
        assert (await client.post("/ask", json={"question": "b"}, headers=bob)).status_code == 200
        await client.post(f"/runs/{run_id}/cancel", headers=alice)
        assert (await client.post("/ask", json={"question": "c"}, headers=alice)).status_code == 200


async def test_a_spent_token_budget_is_a_429_until_midnight_utc(app_client: AppFactory) -> None:
    """TOKEN_BUDGET_PER_KEY: a run that has started is never cut short; its tokens count
    once it ends, and past the budget the client's next run is refused until midnight UTC."""
    fake = FakeOpenAI(default=FINISH)
    async with app_client(fake, token_budget_per_key=1) as client:
        first = await client.post("/ask", json={"question": "first"})
        usage = first.json()["usage"]
        assert first.status_code == 200 and usage["prompt_tokens"] + usage["completion_tokens"] > 1
        refused = await client.post("/ask", json={"question": "second"})
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 86_400
        assert "daily budget of 1 LLM tokens" in refused.json()["detail"]
        assert fake.calls == 1


async def test_a_timeout_keeps_the_steps_and_the_true_usage(app_client: AppFactory) -> None:
    """One step runs, the next LLM call hangs until the deadline: the stored run keeps the
    step and the usage of the call that answered (usage used to come with the final event
    only, so a run that timed out said 0/0/0)."""
    fake = FakeOpenAI(script=["Thought: compute\nAction: python[print(6 * 7)]", Fault("hang")])
    async with app_client(fake) as client:
        body = {"question": "q", "timeout_s": 1.5, "actions": ["python"]}
        response = await client.post("/ask", json=body)
        assert response.status_code == 504, response.text
        run = await wait_for(client, response.json()["run_id"], "timeout")
        assert run["usage"]["llm_calls"] == 1 and run["usage"]["prompt_tokens"] > 0
        assert run["steps"][0]["observation"] == "42"


async def test_text_the_store_would_alter_is_refused_not_altered(app_client: AppFactory) -> None:
    """A client's own labels, feedback and descriptions are stored as sent or refused: NUL
    and lone surrogates were stored as U+FFFD, and a thread's label came back other than it
    was sent (red-team pass EY)."""
    async with app_client(FakeOpenAI(default=FINISH)) as client:
        headers = {"content-type": "application/json"}
        for body in (
            '{"metadata": {"user": "a\\u0000b"}}',
            '{"metadata": {"a\\u0000": "b"}}',
            '{"metadata": {"user": "\\ud800"}}',
        ):
            refused = await client.post("/threads", content=body, headers=headers)
            assert refused.status_code == 422, (body, refused.text)
            assert "cannot be stored" in refused.text, refused.text
        kept = await client.post("/threads", json={"metadata": {"user": "a\tb \u00e9"}})
        thread = kept.json()["thread_id"]
        assert (await client.get(f"/threads/{thread}")).json()["metadata"] == {
            "user": "a\tb \u00e9"
        }
        run_id = (await client.post("/ask", json={"question": "q"})).json()["run_id"]
        refused = await client.post(
            f"/runs/{run_id}/feedback", content='{"comment": "x\\u0000"}', headers=headers
        )
        assert refused.status_code == 422 and "cannot be stored" in refused.text, refused.text
        refused = await client.post(
            "/collections", content='{"name": "c", "description": "\\u0000"}', headers=headers
        )
        assert refused.status_code == 422 and "cannot be stored" in refused.text, refused.text


async def test_a_thread_remembers_its_turns(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=lambda request: (
            "Thought: done\nAction: finish["
            + ("2" if "seven" in str(request.messages[-1]["content"]) else "8")
            + " dollars]"
        )
    )
    async with app_client(fake) as client:
        created = await client.post("/threads", json={"metadata": {"user": "olivia"}})
        assert created.status_code == 201, created.text
        thread = created.json()["thread_id"]
        first = "Olivia has $23. She bought five bagels for $3 each. How much is left?"
        one = (await client.post("/ask", json={"question": first, "thread_id": thread})).json()
        two = (
            await client.post(
                "/ask", json={"question": "And what if she bought seven?", "thread_id": thread}
            )
        ).json()
        assert (one["answer"], two["answer"]) == ("8 dollars", "2 dollars")
        seen = two["details"]["memory"]  # kept with the run, for the export
        assert seen == {
            "summary": None,
            "turns": [{"question": first, "answer": "8 dollars", "program": None}],
        }
        second_request = json.dumps(fake.chat_requests[-1].messages)
        assert "five bagels" in second_request and "8 dollars" in second_request
        assert "five bagels" not in json.dumps(fake.chat_requests[0].messages[2:])
        turns = (await client.get(f"/threads/{thread}")).json()["turns"]
        assert [(t["question"], t["answer"]) for t in turns] == [
            (first, "8 dollars"),
            ("And what if she bought seven?", "2 dollars"),
        ]
        listed = (await client.get(f"/runs?thread_id={thread}")).json()["runs"]
        assert [r["run_id"] for r in listed] == [two["run_id"], one["run_id"]]
        assert (await client.get("/threads")).json()["threads"][0]["metadata"] == {"user": "olivia"}
        assert (await client.delete(f"/threads/{thread}")).status_code == 204
        assert (await client.get(f"/runs/{one['run_id']}")).status_code == 404
        assert (await client.get(f"/threads/{thread}")).status_code == 404


async def test_a_busy_thread_refuses_a_second_run(app_client: AppFactory) -> None:
    fake = FakeOpenAI(default=FINISH)
    fake.fail("hang", times=1)
    async with app_client(fake) as client:
        thread = (await client.post("/threads")).json()["thread_id"]
        busy = (await client.post("/runs", json={"question": "q", "thread_id": thread})).json()
        refused = await client.post("/ask", json={"question": "q2", "thread_id": thread})
        assert refused.status_code == 409
        assert refused.json()["run_id"] == busy["run_id"]
        assert (await client.delete(f"/threads/{thread}")).status_code == 409
        await client.post(f"/runs/{busy['run_id']}/cancel")
        after = await client.post("/ask", json={"question": "q3", "thread_id": thread})
        assert after.status_code == 200, after.text
        unknown = await client.post("/ask", json={"question": "q", "thread_id": "abc123"})
        assert unknown.status_code == 404


async def test_feedback_is_kept_per_run_and_updated(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(default=FINISH)) as client:
        run_id = (await client.post("/ask", json={"question": "q"})).json()["run_id"]
        empty = await client.post(f"/runs/{run_id}/feedback", json={})
        assert empty.status_code == 422
        bad = await client.post(f"/runs/{run_id}/feedback", json={"score": 0})
        assert bad.status_code == 422
        boolean = await client.post(f"/runs/{run_id}/feedback", json={"score": True})
        assert boolean.status_code == 422  # red-team pass U: stored as 1
        given = await client.post(f"/runs/{run_id}/feedback", json={"score": -1, "comment": "no"})
        assert given.status_code == 200 and given.json()["score"] == -1
        updated = await client.post(f"/runs/{run_id}/feedback", json={"correction": "41"})
        assert (updated.json()["score"], updated.json()["correction"]) == (-1, "41")
        shown = (await client.get(f"/runs/{run_id}")).json()["feedback"]
        assert (shown["score"], shown["comment"], shown["correction"]) == (-1, "no", "41")
        missing = await client.post("/runs/0123abcd/feedback", json={"score": 1})
        assert missing.status_code == 404


async def test_runs_threads_and_feedback_belong_to_their_key(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(default=FINISH), agent_api_keys=f"{KEY_A},{KEY_B}") as c:
        thread = (await c.post("/threads", headers=A)).json()["thread_id"]
        run_id = (
            await c.post("/ask", json={"question": "q", "thread_id": thread}, headers=A)
        ).json()["run_id"]
        assert (await c.get(f"/runs/{run_id}", headers=A)).status_code == 200
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/events", f"/threads/{thread}"):
            assert (await c.get(path, headers=B)).status_code == 404, path
        assert (await c.post(f"/runs/{run_id}/cancel", headers=B)).status_code == 404
        assert (
            await c.post(f"/runs/{run_id}/feedback", json={"score": 1}, headers=B)
        ).status_code == 404
        assert (await c.delete(f"/threads/{thread}", headers=B)).status_code == 404
        assert (await c.get("/runs", headers=B)).json()["runs"] == []
        assert (await c.get("/threads", headers=B)).json()["threads"] == []
        other = await c.post("/ask", json={"question": "q", "thread_id": thread}, headers=B)
        assert other.status_code == 404


async def test_feedback_export_builds_the_training_sets(app_client: AppFactory) -> None:
    fake = FakeOpenAI(
        script=lambda request: (
            "Thought: I know it.\nAction: finish["
            + ("41" if "zebra" in request.text else "42")
            + "]"
        )
    )
    async with app_client(fake) as client:
        liked = (await client.post("/ask", json={"question": "What is 6*7?"})).json()["run_id"]
        wrong = (await client.post("/ask", json={"question": "What is 6*7, zebra?"})).json()
        unrated = (await client.post("/ask", json={"question": "And 5*5?"})).json()["run_id"]
        await client.post(f"/runs/{liked}/feedback", json={"score": 1})
        await client.post(
            f"/runs/{wrong['run_id']}/feedback", json={"score": -1, "correction": "42"}
        )

        async def export(query: str) -> list[dict[str, Any]]:
            response = await client.get(f"/feedback/export?{query}")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/x-ndjson")
            return [json.loads(line) for line in response.text.splitlines()]

        sft = await export("format=sft")
        assert len(sft) == 2
        for record in sft:
            roles = [m["role"] for m in record["messages"]]
            assert roles[0] == "system" and roles[-1] == "assistant"
        finals = sorted(record["messages"][-1]["content"] for record in sft)
        assert finals == ["Action: finish[42]", "Thought: I know it.\nAction: finish[42]"]
        (pair,) = await export("format=preference")
        assert pair["chosen"][0]["content"].endswith("finish[42]")
        assert pair["rejected"][0]["content"].endswith("finish[41]")
        raw = await export("format=raw")
        assert {r["run_id"] for r in raw} == {liked, wrong["run_id"], unrated}
        assert await export("format=raw&since=2999-01-01T00:00:00Z") == []
        assert (await client.get("/feedback/export?format=csv")).status_code == 422


async def test_a_pal_follow_up_sees_the_earlier_program(app_client: AppFactory) -> None:
    """In a thread, an earlier PAL run is shown as its question and the program that
    answered it: the follow-up edits that program (what small models manage)."""
    first = "def solution():\n    return 23 - 5 * 3\n"
    second = "def solution():\n    return 23 - 7 * 3\n"
    fake = FakeOpenAI(
        script=lambda request: f"```python\n{second if 'seven' in request.text else first}```"
    )
    async with app_client(fake) as client:
        thread = (await client.post("/threads")).json()["thread_id"]
        body = {"mode": "pal", "thread_id": thread}
        one = await client.post("/ask", json={**body, "question": "Olivia has $23... left?"})
        two = await client.post("/ask", json={**body, "question": "And if she bought seven?"})
        assert (one.json()["answer"], two.json()["answer"]) == ("8", "2")
        sent = fake.chat_requests[-1].messages
        assert sent[-3] == {"role": "user", "content": "Q: Olivia has $23... left?"}
        assert sent[-2]["role"] == "assistant" and "return 23 - 5 * 3" in sent[-2]["content"]
        assert sent[-1]["content"] == "Q: And if she bought seven?"


async def test_requests_that_write_count_against_the_rate_limit(app_client: AppFactory) -> None:
    """Red-team pass CV: 3,000 new threads from one key, unlimited, made every other
    client's /ask 50 times slower on the store's one writer. Threads, feedback, collections,
    deletes and cancels count against RATE_LIMIT, in a window apart from runs', per key."""
    async with app_client(
        FakeOpenAI(default="Action: finish[x]"),
        rate_limit="3/minute",
        agent_api_keys=f"{KEY_A},{KEY_B}",
    ) as c:
        run = (await c.post("/ask", json={"question": "q"}, headers=A)).json()["run_id"]
        writes = [
            await c.post("/threads", json={}, headers=A),
            await c.post(f"/runs/{run}/feedback", json={"score": 1}, headers=A),
            await c.post("/threads", json={}, headers=A),
        ]
        assert [w.status_code for w in writes] == [201, 200, 201], [w.text for w in writes]
        refused = await c.post("/threads", json={}, headers=A)
        assert refused.status_code == 429 and "for writes" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        gone = await c.delete(f"/threads/{writes[0].json()['thread_id']}", headers=A)
        assert gone.status_code == 429  # a delete writes too
        assert (await c.post("/ask", json={"question": "q"}, headers=A)).status_code == 200
        assert (await c.post("/threads", json={}, headers=B)).status_code == 201  # B's own


async def test_reads_count_against_their_own_rate_limit(app_client: AppFactory) -> None:
    """Red-team pass FB: one key reading its own 156 KB run 35 times a second, unlimited,
    made every other key's /ask 11 times slower. Reads count against READ_RATE_LIMIT, in a
    window apart from runs' and writes', per key; health and readiness are never counted."""
    async with app_client(
        FakeOpenAI(default="Action: finish[x]"),
        read_rate_limit="3/minute",
        agent_api_keys=f"{KEY_A},{KEY_B}",
    ) as c:
        run = (await c.post("/ask", json={"question": "q"}, headers=A)).json()["run_id"]
        reads = [
            await c.get(f"/runs/{run}", headers=A),
            await c.get("/runs", headers=A),
            await c.get(f"/runs/{run}/events", headers=A),
        ]
        assert [r.status_code for r in reads] == [200, 200, 200], [r.text for r in reads]
        refused = await c.get(f"/runs/{run}", headers=A)
        assert refused.status_code == 429 and "for reads" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.post("/ask", json={"question": "q"}, headers=A)).status_code == 200
        assert (await c.post("/threads", json={}, headers=A)).status_code == 201
        assert (await c.get("/runs", headers=B)).status_code == 200  # B's own window


async def test_one_key_holds_a_bounded_number_of_threads(
    app_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MAX_THREADS_PER_OWNER", 2)
    async with app_client(FakeOpenAI(), agent_api_keys=f"{KEY_A},{KEY_B}") as c:
        made = [await c.post("/threads", json={}, headers=A) for _ in range(2)]
        assert [m.status_code for m in made] == [201, 201]
        full = await c.post("/threads", json={}, headers=A)
        assert full.status_code == 409 and "2 threads, the limit" in full.json()["detail"]
        assert (await c.post("/threads", json={}, headers=B)).status_code == 201
        thread = made[0].json()["thread_id"]
        assert (await c.delete(f"/threads/{thread}", headers=A)).status_code == 204
        assert (await c.post("/threads", json={}, headers=A)).status_code == 201


async def test_an_export_at_a_time_per_key_written_in_batches(
    app_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red-team pass CV: ten exports at once from one key took the process from 148 to
    775 MB, each made whole in memory first. One export at a time per key (429), two in all
    (503), written a batch of lines at a time; the place is given back when it ends."""
    monkeypatch.setattr(feedback_routes, "EXPORT_BATCH", 1)
    async with app_client(FakeOpenAI(default="Action: finish[x]")) as client:
        made = {
            (await client.post("/ask", json={"question": f"q{n}"})).json()["run_id"]
            for n in range(3)
        }
        exports = client._transport.app.state.reactpal.exports
        exports.take("")  # the one owner of a server without keys: an export under way
        busy = await client.get("/feedback/export?format=raw")
        assert busy.status_code == 429 and "exporting already" in busy.json()["detail"]
        exports.give_back("")
        exports.take("other-1")
        exports.take("other-2")
        full = await client.get("/feedback/export?format=raw")
        assert full.status_code == 503 and full.headers["retry-after"] == "5"
        exports.give_back("other-1")
        exports.give_back("other-2")
        raw = await client.get("/feedback/export?format=raw")
        assert {json.loads(line)["run_id"] for line in raw.text.splitlines()} == made
        assert (await client.get("/feedback/export?format=raw")).status_code == 200  # given back


async def test_runs_past_the_retention_are_deleted_at_start(
    app_client: AppFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``RUN_RETENTION_DAYS``: the service deletes older runs when it starts (and hourly)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/kept.db"
    store = store_module.RunStore(url)
    await store.start()
    now = store_module._now
    monkeypatch.setattr(store_module, "_now", lambda: now() - store_module.dt.timedelta(days=3))
    await store.create("a9ed", "react", "q", status="finished")
    monkeypatch.setattr(store_module, "_now", now)
    await store.create("f7e5", "react", "q", status="finished")
    await store.aclose()
    async with app_client(FakeOpenAI(), database_url=url, run_retention_days=2) as c:
        deadline = time.monotonic() + 10
        while (await c.get("/runs/a9ed")).status_code != 404:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert (await c.get("/runs/f7e5")).status_code == 200
