"""The run store on a real Postgres: the migrations (an old database keeps its runs) and the
run, thread, event and feedback API through the app, as on SQLite."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from service import store as store_module
from service.store import RunStore
from tests.fakes import FakeOpenAI
from tests.service.conftest import AppFactory
from tests.service.test_runs_api import sse, wait_for

LEGACY = """
CREATE TABLE runs (
    run_id VARCHAR(40) NOT NULL PRIMARY KEY, created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    mode VARCHAR(16) NOT NULL, question TEXT NOT NULL, status VARCHAR(16) NOT NULL,
    answer TEXT, error TEXT, steps JSON NOT NULL, usage JSON NOT NULL, details JSON NOT NULL,
    duration_ms FLOAT NOT NULL
);
CREATE INDEX ix_runs_status ON runs (status);
INSERT INTO runs VALUES ('0123abcd', now(), 'pal', 'What is 6*7?', 'finished', '42', NULL,
    '[]', '{"llm_calls": 1}', '{"value": 42}', 12.5);
"""


async def test_an_old_postgres_database_keeps_its_runs(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        await conn.execute(LEGACY)
    finally:
        await conn.close()
    store = RunStore(postgres_url)
    await store.start()
    try:
        run = await store.get("0123abcd", owner="")
        assert run is not None and (run["answer"], run["usage"]) == ("42", {"llm_calls": 1})
        await store.create("fedcba98", "react", "new")
        page, _ = await store.list_runs("")
        assert [r["run_id"] for r in page] == ["fedcba98", "0123abcd"]
    finally:
        await store.aclose()


async def test_runs_threads_events_and_feedback_on_postgres(
    app_client: AppFactory, postgres_url: str
) -> None:
    fake = FakeOpenAI(
        script=lambda request: (
            "Thought: done\nAction: finish["
            + ("2" if "seven" in str(request.messages[-1]["content"]) else "8")
            + "]"
        )
    )
    async with app_client(fake, database_url=postgres_url) as client:
        thread = (await client.post("/threads", json={"metadata": {"k": "v"}})).json()["thread_id"]
        first = await client.post(
            "/runs", json={"question": "Five bagels at $3 from $23?", "thread_id": thread}
        )
        run_id = first.json()["run_id"]
        await wait_for(client, run_id, "finished")
        second = await client.post(
            "/ask", json={"question": "And if she bought seven?", "thread_id": thread}
        )
        assert second.json()["answer"] == "2"
        assert "Five bagels" in json.dumps(fake.chat_requests[-1].messages)
        replay = sse((await client.get(f"/runs/{run_id}/events")).text)
        assert [name for _, name, _ in replay][-1] == "final"
        assert sse((await client.get(f"/runs/{run_id}/events?after=2")).text) == replay[2:]
        await client.post(f"/runs/{run_id}/feedback", json={"score": -1, "correction": "8"})
        raw = (await client.get("/feedback/export?format=raw")).text.splitlines()
        assert len(raw) == 2
        fake.fail("hang", times=1)
        hanging = (await client.post("/runs", json={"question": "q"})).json()["run_id"]
        await wait_for(client, hanging, "running")
        await asyncio.sleep(0.1)
        assert (await client.post(f"/runs/{hanging}/cancel")).json()["status"] == "cancelled"
        assert (await client.delete(f"/threads/{thread}")).status_code == 204
        assert (await client.get(f"/runs/{run_id}")).status_code == 404


async def test_replicas_starting_together_migrate_one_at_a_time(postgres_url: str) -> None:
    """Two replicas on a fresh database: without a lock both ran the migrations and one
    failed ("relation already exists"); the advisory lock makes the second find them done."""
    stores = [RunStore(postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(store.start() for store in stores))
        await stores[0].create("0123abcd", "react", "q")
        assert (await stores[2].get("0123abcd")) is not None
    finally:
        for store in stores:
            await store.aclose()


async def test_collections_and_retrieve_on_postgres(
    app_client: AppFactory, postgres_url: str
) -> None:
    """Postgres's own full-text search (tsvector, ts_rank_cd) behind the same API."""
    from tests.service.test_collections_api import RETRIEVE, _retrieving_model, upload
    from tests.tools.test_retrieve_ingest import HTML, MARKDOWN

    fake = _retrieving_model("capital of Freedonia", "Fredville [1]")
    async with app_client(fake, database_url=postgres_url, **RETRIEVE) as client:
        assert (await client.post("/collections", json={"name": "handbook"})).status_code == 201
        assert (await upload(client, "handbook", "s.html", HTML.encode())).status_code == 201
        made = await upload(client, "handbook", "freedonia.md", MARKDOWN.encode())
        assert made.status_code == 201
        body = (
            await client.post(
                "/ask", json={"question": "Capital of Freedonia?", "collections": ["handbook"]}
            )
        ).json()
        assert body["answer"] == "Fredville [1]"
        assert body["steps"][0]["observation"].startswith("[1] freedonia.md")
        assert body["details"]["sources"][0]["document_id"] == made.json()["document_id"]
        # A query of stop words and symbols alone finds nothing, and does not fail.
        store = RunStore(postgres_url)
        try:
            from service.collections import Collections

            index = Collections(store)
            (mine,) = await index.find("", names=["handbook"])
            ids = [mine["collection_id"]]
            assert await index.search(ids, "the & | ! :*", 4) == []
            assert (await index.search(ids, "Trentino river's length", 4))[0].source == "s.html"
        finally:
            await store.aclose()
        assert (await client.delete("/collections/handbook")).status_code == 204
        assert (await client.get("/collections")).json()["collections"] == []


@pytest.mark.parametrize("on_postgres", [False, True], ids=["sqlite", "postgres"])
async def test_text_a_database_refuses_is_stored_all_the_same(
    app_client: AppFactory, postgres_url: str, on_postgres: bool
) -> None:
    """A model's reply with lone surrogates (JSON may carry them) and an answer with NUL (which
    Postgres refuses in text): the run is stored, served and listed, with U+FFFD for each
    (before, it stayed "running" for good, and the owner's run list answered 500), and the
    live answer is the stored one."""
    fake = FakeOpenAI(script=lambda request: "Thought: \ud800 hmm\nAction: finish[a\x00b\udfff]")
    database = {"database_url": postgres_url} if on_postgres else {}
    async with app_client(fake, **database) as client:
        res = await client.post("/ask", json={"question": "q?"})
        assert res.status_code == 200, res.text
        body = res.json()
        # live as stored (pass BT: the live answer kept its NUL, the stored one had U+FFFD)
        assert body["stored"] is True and body["answer"] == "a\ufffdb\ufffd", body
        run = (await client.get(f"/runs/{body['run_id']}")).json()
        assert (run["status"], run["answer"], run["question"]) == (
            "finished",
            "a\ufffdb\ufffd",
            "q?",
        )
        assert "\ufffd hmm" in json.dumps(run["steps"], ensure_ascii=False)
        assert (await client.get("/runs")).status_code == 200


async def test_a_run_whose_result_cannot_be_stored_still_ends(
    app_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the final write fails for a reason of its content, the run is stored as an error
    without it: left "running", it held its thread (409 for every next question) for good."""
    real_finish = RunStore.finish

    async def finish(self: RunStore, /, run_id: str, **fields: object) -> None:
        if "answer" in fields:
            raise TypeError("a value the database cannot take")
        await real_finish(self, run_id, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(RunStore, "finish", finish)
    fake = FakeOpenAI(script=lambda request: "Thought: done\nAction: finish[8]")
    async with app_client(fake) as client:
        thread = (await client.post("/threads", json={})).json()["thread_id"]
        first = (await client.post("/ask", json={"question": "q", "thread_id": thread})).json()
        assert first["stored"] is False
        run = (await client.get(f"/runs/{first['run_id']}")).json()
        assert run["status"] == "error" and "could not be stored" in run["error"], run
        again = await client.post("/ask", json={"question": "q2", "thread_id": thread})
        assert again.status_code == 200, again.text


async def test_concurrent_creates_stop_at_the_thread_cap(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting an owner's threads and adding one was two steps: 20 creates at once on
    Postgres made 17 threads under a cap of 5. They take turns per owner now, and another
    owner's creates do not wait for them."""
    monkeypatch.setattr(store_module, "MAX_THREADS_PER_OWNER", 5)
    store = RunStore(postgres_url)
    await store.start()
    try:
        made = await asyncio.gather(
            *(store.create_thread(f"cap{n:04d}", "capped", {}) for n in range(20)),
            store.create_thread("other0001", "other", {}),
            return_exceptions=True,
        )
        refused = [m for m in made if isinstance(m, store_module.TooManyThreads)]
        assert len(refused) == 15, made
        assert [m for m in made if isinstance(m, BaseException) and m not in refused] == []
        page, _ = await store.list_threads("capped", limit=100)
        assert len(page) == 5
    finally:
        await store.aclose()
