"""Document collections through the real app: the endpoints, ingestion of real files, refusals
that leave nothing behind, keys that cannot see each other's collections, and the
``retrieve`` action in a ReAct run (scripted LLM, real openai client, real sandbox)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from service import collections as collections_module
from service.deps import owner_of
from service.routes import collections as routes_collections
from service.state import IngestSlots as slots_type
from tests.fakes import FakeOpenAI
from tests.fakes.llm import FakeRequest
from tests.service.conftest import AppFactory
from tests.tools.test_retrieve_ingest import HTML, MARKDOWN, make_pdf

RETRIEVE = {"allowed_actions": "python,search,retrieve,finish"}
KEY_A, KEY_B = "a" * 24, "b" * 24
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
PROBLEM = "application/problem+json"


def observation(request: FakeRequest) -> str:
    """The observation the model was just shown (empty before the first action)."""
    last = str(request.messages[-1].get("content") or "")
    return last.split("Observation:", 1)[1] if "Observation:" in last else ""


async def upload(client: Any, name: str, filename: str, data: bytes, **kw: Any) -> Any:
    return await client.post(
        f"/collections/{name}/documents", files={"file": (filename, data)}, **kw
    )


async def test_collections_are_created_listed_and_deleted(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        created = await client.post(
            "/collections", json={"name": "handbook", "description": "Freedonia"}
        )
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/collections/handbook"
        assert created.json()["documents"] == 0
        again = await client.post("/collections", json={"name": "handbook"})
        assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
        for bad in ("", "a/b", "-x", "x" * 65, "spaces here"):
            refused = await client.post("/collections", json={"name": bad})
            assert refused.status_code == 422, bad
        await client.post("/collections", json={"name": "atlas"})
        listed = (await client.get("/collections")).json()["collections"]
        assert [item["name"] for item in listed] == ["atlas", "handbook"]
        assert (await client.delete("/collections/atlas")).status_code == 204
        assert (await client.delete("/collections/atlas")).status_code == 404
        assert (await client.get("/collections/atlas")).status_code == 404
        assert (await client.get("/collections/handbook")).json()["description"] == "Freedonia"


async def test_pdf_html_markdown_and_json_text_are_ingested(app_client: AppFactory) -> None:
    pdf = make_pdf(["Page one: the treaty.", "Page two: the tin mines employ 3200 people."])
    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        made = {
            "report.pdf": await upload(client, "docs", "report.pdf", pdf),
            "sylvania.html": await upload(client, "docs", "sylvania.html", HTML.encode()),
            "handbook.md": await upload(client, "docs", "handbook.md", MARKDOWN.encode()),
        }
        for name, response in made.items():
            assert response.status_code == 201, (name, response.text)
            assert response.json()["source"] == name and response.json()["chunks"] >= 1
        assert made["report.pdf"].json()["media_type"] == "application/pdf"
        assert made["report.pdf"].json()["pages"] == 2
        assert made["sylvania.html"].json()["media_type"] == "text/html"
        assert made["handbook.md"].json()["media_type"] == "text/markdown"
        as_json = await client.post(
            "/collections/docs/documents",
            json={"text": "Plain words about mustard.", "source": "notes"},
        )
        assert as_json.status_code == 201 and as_json.json()["media_type"] == "text/plain"
        document_id = as_json.json()["document_id"]
        path = f"/collections/docs/documents/{document_id}"
        assert as_json.headers["location"] == path
        assert (await client.get(path)).json()["source"] == "notes"
        documents = (await client.get("/collections/docs/documents")).json()["documents"]
        assert [d["source"] for d in documents][-1] == "notes" and len(documents) == 4
        total = (await client.get("/collections/docs")).json()
        assert total["documents"] == 4 and total["chunks"] == sum(d["chunks"] for d in documents)
        assert (await client.delete(path)).status_code == 204
        assert (await client.get(path)).status_code == 404
        assert (await client.get("/collections/docs")).json()["documents"] == 3


async def test_what_cannot_be_ingested_is_refused_clearly(
    app_client: AppFactory, settings_for: Any, tmp_path: Path
) -> None:
    async with app_client(FakeOpenAI(), retrieve_max_document_bytes=4096, **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        cases = {
            415: await upload(client, "docs", "x.png", b"\x89PNG\r\n\x1a\n" + bytes(300)),
            413: await upload(client, "docs", "big.txt", b"word " * 2000),
            422: await upload(client, "docs", "broken.pdf", b"%PDF-1.7\nnothing else"),
        }
        for status, response in cases.items():
            assert response.status_code == status, (status, response.text)
            assert response.headers["content-type"] == PROBLEM
        huge = await client.post(
            "/collections/docs/documents",
            content=b"x" * 200_000,
            headers={"content-type": "text/plain"},
        )
        assert huge.status_code == 413  # over the body limit: refused before it is read
        unsupported = await client.post(
            "/collections/docs/documents", content=b"words", headers={"content-type": "text/plain"}
        )
        assert unsupported.status_code == 415
        empty = await client.post(
            "/collections/docs/documents", json={"text": "   ", "source": "blank"}
        )
        assert empty.status_code == 422
        no_file = await client.post(
            "/collections/docs/documents", files={"other": ("a.txt", b"text")}
        )
        assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
        missing = await upload(client, "nowhere", "a.txt", b"text")
        assert missing.status_code == 404
        for broken in (  # red-team pass EF: Starlette's own 400 for these
            {"content": b"--x--", "headers": {"content-type": "multipart/form-data"}},
            {"files": [("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))]},
        ):
            refused = await client.post("/collections/docs/documents", **broken)  # type: ignore[arg-type]
            assert refused.status_code == 422, refused.text
            assert "invalid multipart body" in refused.json()["detail"]
        deep = await client.post(  # red-team pass Q: a RecursionError answered 500
            "/collections/docs/documents",
            content=b"[" * 1500 + b"]" * 1500,
            headers={"content-type": "application/json"},
        )
        assert deep.status_code == 422 and "nested too deeply" in deep.json()["detail"]
        # refused as sent, JSON or multipart (pass EY: cut and stored; FA: NUL as a space)
        for name, said in (("s" * 301, "300"), ("a\x00b", "U+0000")):
            for sent in (
                {"json": {"text": "Some words.", "source": name}},
                {"files": {"file": ("a.txt", b"Some words.")}, "data": {"source": name}},
            ):
                refused = await client.post("/collections/docs/documents", **sent)  # type: ignore[arg-type]
                assert refused.status_code == 422 and said in refused.json()["detail"], sent
        assert (await client.get("/collections/docs")).json()["documents"] == 0
        named = await upload(client, "docs", "f" * 400 + ".txt", b"Some words.")
        assert named.status_code == 201 and len(named.json()["source"]) == 300  # not chosen


# Starlette's parser leaves the cut-off part's spooled file for the collector to close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_file_part_cut_off_is_said_to_be_cut_off(app_client: AppFactory) -> None:
    """Pass EY: a file part without its closing boundary was "no file field named 'file'",
    the part being right there."""
    async with app_client(FakeOpenAI()) as client:
        assert (await client.post("/collections", json={"name": "docs"})).status_code == 201
        cut = await client.post(
            "/collections/docs/documents",
            content=b'--b\r\ncontent-disposition: form-data; name="file"; filename="a.txt"\r\n'
            b"\r\nsome text",
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert cut.status_code == 422 and "closing boundary" in cut.json()["detail"], cut.text


async def test_documents_are_added_a_few_at_a_time(app_client: AppFactory) -> None:
    """Red-team pass Q: four 10 MB texts at once took a process from 0.2 to 2.2 GB. Past the
    documents in work and those waiting, another is refused with a 503 to retry."""
    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        slots = client._transport.app.state.reactpal.ingests
        release = asyncio.Event()
        held: list[asyncio.Task[None]] = []

        async def hold(owner: str) -> None:
            async with slots.slot(owner):
                await release.wait()

        for n in range(slots.RUNNING + slots.WAITING):
            held.append(asyncio.create_task(hold(f"other-{n // slots.PER_OWNER}")))
        await asyncio.sleep(0.05)
        refused = await upload(client, "docs", "a.txt", b"text to add")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        release.set()
        await asyncio.gather(*held)
        added = await upload(client, "docs", "a.txt", b"text to add")
        assert added.status_code == 201, added.text


async def test_one_client_cannot_take_every_place_in_line(app_client: AppFactory) -> None:
    """Red-team pass X: ten documents from one key took the places of every other key's
    (503); pass CV: two small PDFs that parse until their time runs out held both running
    places, and every other key's upload waited a minute. One owner holds ``PER_OWNER``
    places, fewer than run at once: past them its own uploads get a 429, while another
    owner's upload runs at once."""
    assert slots_type.PER_OWNER < slots_type.RUNNING
    async with app_client(FakeOpenAI(), agent_api_keys=f"{KEY_A},{KEY_B}", **RETRIEVE) as c:
        for key in (A, B):
            await c.post("/collections", json={"name": "docs"}, headers=key)
        slots = c._transport.app.state.reactpal.ingests
        release = asyncio.Event()

        async def hold() -> None:
            async with slots.slot(owner_of(KEY_A)):
                await release.wait()

        held = [asyncio.create_task(hold()) for _ in range(slots.PER_OWNER)]
        await asyncio.sleep(0.05)
        refused = await upload(c, "docs", "a.txt", b"text to add", headers=A)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
        assert "adding a document already" in refused.json()["detail"]
        other = await asyncio.wait_for(upload(c, "docs", "b.txt", b"text to add", headers=B), 10)
        assert other.status_code == 201  # not behind A's
        release.set()
        await asyncio.gather(*held)
        assert (await upload(c, "docs", "a.txt", b"text to add", headers=A)).status_code == 201
        assert not slots._held  # every place given back


async def test_a_document_must_arrive_in_time_and_one_at_a_time(app_client: AppFactory) -> None:
    """Red-team pass EF: a body trickled in was held as long as its client liked, before any
    place was taken (120 of them took the process to 1.6 GB); one client's upload is
    received at a time, a few in all, and a body gets ``BODY_TIMEOUT_S`` to arrive."""
    async with app_client(FakeOpenAI(), body_timeout_s=0.3, **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})

        async def trickle() -> AsyncIterator[bytes]:
            yield b'{"text": "the start of a document'
            await asyncio.sleep(1.0)
            yield b' and its end", "source": "slow.txt"}'

        slow = await client.post(
            "/collections/docs/documents",
            content=trickle(),
            headers={"content-type": "application/json"},
        )
        assert slow.status_code == 408 and "did not arrive within 0.3 s" in slow.json()["detail"]
        slow_question = await client.post(  # pass EJ: any body, /ask's too
            "/ask", content=trickle(), headers={"content-type": "application/json"}
        )
        assert slow_question.status_code == 408, slow_question.text
        assert "did not arrive within 0.3 s" in slow_question.json()["detail"]
        brackets = await client.post(  # passes EF, EJ: the parser held the event loop
            "/collections/docs/documents",
            content=b'{"text": ' + b"[]," * 120_000 + b"[]}",
            headers={"content-type": "application/json"},
        )
        assert brackets.status_code == 422 and "as a file" in brackets.json()["detail"]
        uploads = client._transport.app.state.reactpal.uploads
        uploads.take("127.0.0.1")  # this client's address: a document of its arriving
        mine = await upload(client, "docs", "a.txt", b"text to add")
        assert mine.status_code == 429 and "sending a document already" in mine.json()["detail"]
        uploads.give_back("127.0.0.1")
        for n in range(uploads.running):
            uploads.take(f"10.0.0.{n}")
        full = await upload(client, "docs", "a.txt", b"text to add")
        assert full.status_code == 503 and full.headers["retry-after"] == "2"
        for n in range(uploads.running):
            uploads.give_back(f"10.0.0.{n}")
        # another client without a key, at another address, parsing: not this one's place
        async with client._transport.app.state.reactpal.ingests.slot("10.0.0.9"):
            added = await upload(client, "docs", "a.txt", b"text to add")
        assert added.status_code == 201, added.text
        assert (await client.get("/collections/docs")).json()["documents"] == 1


async def test_a_failed_ingestion_leaves_nothing_half_indexed(
    app_client: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its passages fail to be stored: nothing of the document is left."""
    real_insert = collections_module.insert

    def failing_insert(table: Any) -> Any:
        if table is collections_module.chunks_table:
            raise OperationalError("INSERT INTO chunks", {}, Exception("disk I/O error"))
        return real_insert(table)

    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        monkeypatch.setattr(collections_module, "insert", failing_insert)
        failed = await upload(client, "docs", "handbook.md", MARKDOWN.encode())
        assert failed.status_code == 503, failed.text
        monkeypatch.setattr(collections_module, "insert", real_insert)
        assert (await client.get("/collections/docs")).json()["documents"] == 0
    with sqlite3.connect(tmp_path / "runs.db") as db:
        for table in ("documents", "chunks", "chunks_fts"):
            (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert count == 0, table


LONG_TEXT = "\n\n".join(f"Paragraph {n} tells of the harbour of Zembla." * 8 for n in range(300))


async def test_a_document_is_seen_whole_or_not_at_all_and_lets_writers_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red-team pass EF: all of a 10 MB document's passages went in one transaction, and
    every other writer (a run being stored) waited 21-55 s for the database's lock. The
    passages go in a few at a time, unseen until the document's row is written last; a
    failure at any step leaves nothing."""
    from service.collections import Collections, prepare_document
    from service.store import RunStore, StoreUnavailable

    monkeypatch.setattr(collections_module, "STAGE_BATCH", 1)
    store = RunStore(f"sqlite+aiosqlite:///{tmp_path}/index.db")
    await store.start()
    try:
        index = Collections(store)
        docs = await index.create("a", "docs", "")
        new = await prepare_document(LONG_TEXT.encode(), "zembla.txt", max_pages=1)
        assert len(new.chunks) > 50
        adding = asyncio.create_task(index.add_document(docs, new))
        for _ in range(500):  # until its first passages are in
            if await _count(store, "chunks"):
                break
            await asyncio.sleep(0.01)
        await index.create("a", "other", "")  # a writer in between two batches
        assert not adding.done()
        assert await index.search([docs["collection_id"]], "harbour Zembla", 4) == []
        assert await index.documents(docs) == []
        await adding
        found = await index.search([docs["collection_id"]], "harbour Zembla", 4)
        assert [p.source for p in found] == ["zembla.txt"] * 4

        real_insert = collections_module.insert
        calls = [0]

        def fails_at_the(step: int) -> Any:
            def insert(table: Any) -> Any:
                calls[0] += 1
                if calls[0] == step:
                    raise OperationalError("INSERT", {}, Exception("disk I/O error"))
                return real_insert(table)

            return insert

        other = await index.create("a", "more", "")
        for step in (10, len(new.chunks) + 1):  # a batch of passages; the document's row
            calls[0] = 0
            monkeypatch.setattr(collections_module, "insert", fails_at_the(step))
            with pytest.raises(StoreUnavailable):
                await index.add_document(other, new)
            monkeypatch.setattr(collections_module, "insert", real_insert)
            assert await index.documents(other) == []
            assert await _count(store, "chunks") == len(new.chunks)  # the first document's
            assert await _count(store, "chunks_fts") == len(new.chunks)
    finally:
        await store.aclose()


async def test_two_processes_cannot_add_the_same_content_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red-team pass EF: with WORKERS=2 the same document was stored twice in 4 rounds of 8
    (both checked, then both wrote). Two stores on one file stand for two processes."""
    from service.collections import Collections, DuplicateDocument, prepare_document
    from service.store import RunStore

    monkeypatch.setattr(collections_module, "STAGE_BATCH", 5)
    stores = [RunStore(f"sqlite+aiosqlite:///{tmp_path}/index.db") for _ in range(2)]
    for store in stores:
        await store.start()
    try:
        first, second = (Collections(store) for store in stores)
        docs = await first.create("a", "docs", "")
        new = await prepare_document(LONG_TEXT.encode(), "zembla.txt", max_pages=1)
        for _ in range(8):
            added = await asyncio.gather(
                first.add_document(docs, new),
                second.add_document(docs, new),
                return_exceptions=True,
            )
            assert sorted(type(a).__name__ for a in added) == ["DuplicateDocument", "dict"], added
            kept = next(a for a in added if isinstance(a, dict))
            assert isinstance(next(a for a in added if a is not kept), DuplicateDocument)
            assert await first.delete_document(docs, kept["document_id"])
            assert await _count(stores[0], "chunks") == 0
    finally:
        for store in stores:
            await store.aclose()


async def test_unfinished_documents_are_dropped_once_seen_twice(tmp_path: Path) -> None:
    """Pass EJ: with several processes on the database (or Postgres), passages a stopped
    process left were kept, and embedded, across restarts. A document still unfinished a
    whole round after it was first seen is dropped; one being added meanwhile is not."""
    from service.collections import Collections, prepare_document
    from service.store import RunStore

    store = RunStore(f"sqlite+aiosqlite:///{tmp_path}/index.db")
    await store.start()
    try:
        index = Collections(store)
        docs = await index.create("a", "docs", "")
        await index.add_document(
            docs, await prepare_document(MARKDOWN.encode(), "a.md", max_pages=1)
        )
        kept = await _count(store, "chunks")

        async def left_behind(document_id: str) -> None:
            async with store.writing() as session:
                await session.execute(
                    collections_module.insert(collections_module.chunks_table),
                    [
                        {
                            "document_id": document_id,
                            "collection_id": docs["collection_id"],
                            "seq": 0,
                            "start": 0,
                            "end": 4,
                            "text": "stale words",
                        }
                    ],
                )

        await left_behind("aa")
        seen = await index.tidy(set())
        assert seen == {"aa"}
        await left_behind("bb")  # one being added now
        seen = await index.tidy(seen)
        assert seen == {"bb"} and await _count(store, "chunks") == kept + 1
        assert await index.tidy(seen) == set()
        assert await _count(store, "chunks") == await _count(store, "chunks_fts") == kept
    finally:
        await store.aclose()


async def _count(store: Any, table: str) -> int:
    from sqlalchemy import text

    async with store.reading() as session:
        return int(await session.scalar(text(f"SELECT count(*) FROM {table}")))


async def test_passages_a_stopped_process_left_are_dropped_at_start(
    app_client: AppFactory, tmp_path: Path
) -> None:
    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        assert (await upload(client, "docs", "a.md", MARKDOWN.encode())).status_code == 201
    with sqlite3.connect(tmp_path / "runs.db") as db:
        (kept,) = db.execute("SELECT count(*) FROM chunks").fetchone()
        db.execute(  # a document whose row was never written: its process stopped
            'INSERT INTO chunks (document_id, collection_id, seq, start, "end", text) '
            "SELECT 'f' || document_id, collection_id, seq, start, \"end\", text FROM chunks"
        )
    async with app_client(FakeOpenAI(), workers=1, **RETRIEVE):  # alone on its database
        pass
    with sqlite3.connect(tmp_path / "runs.db") as db:
        for table in ("chunks", "chunks_fts"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (kept,), table


async def test_collections_belong_to_their_key(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI(), agent_api_keys=f"{KEY_A},{KEY_B}", **RETRIEVE) as c:
        assert (await c.post("/collections", json={"name": "mine"}, headers=A)).status_code == 201
        document = await upload(c, "mine", "h.md", MARKDOWN.encode(), headers=A)
        document_id = document.json()["document_id"]
        for path in (
            "/collections/mine",
            "/collections/mine/documents",
            f"/collections/mine/documents/{document_id}",
        ):
            assert (await c.get(path, headers=B)).status_code == 404, path
            assert (await c.get(path)).status_code == 401
        assert (await c.get("/collections", headers=B)).json()["collections"] == []
        assert (await upload(c, "mine", "x.txt", b"mine now", headers=B)).status_code == 404
        assert (await c.delete("/collections/mine", headers=B)).status_code == 404
        asked = await c.post("/ask", json={"question": "q", "collections": ["mine"]}, headers=B)
        assert asked.status_code == 404
        # The same name is B's own collection, apart from A's.
        assert (await c.post("/collections", json={"name": "mine"}, headers=B)).status_code == 201
        assert (await c.get("/collections/mine", headers=A)).json()["documents"] == 1
        assert (await c.get("/collections/mine", headers=B)).json()["documents"] == 0


def _retrieving_model(query: str, answer: str) -> FakeOpenAI:
    """A model that retrieves ``query`` first, then answers ``answer`` if the observation
    holds it (else says it could not find it)."""

    def script(request: FakeRequest) -> str:
        seen = observation(request)
        if not seen:
            return f"Thought: look it up in the documents\nAction: retrieve[{query}]"
        if answer.split(" [")[0] in seen:
            return f"Thought: the passage says so\nAction: finish[{answer}]"
        return "Thought: not found\nAction: finish[not found]"

    return FakeOpenAI(script=script)


async def test_a_react_run_retrieves_the_passage_and_answers_with_its_source(
    app_client: AppFactory,
) -> None:
    fake = _retrieving_model("capital of Freedonia", "Fredville [1]")
    async with app_client(fake, **RETRIEVE) as client:
        await client.post("/collections", json={"name": "handbook"})
        await upload(client, "handbook", "sylvania.html", HTML.encode())
        ingested = await upload(client, "handbook", "freedonia.md", MARKDOWN.encode())
        response = await client.post(
            "/ask",
            json={"question": "What is the capital of Freedonia?", "collections": ["handbook"]},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "finished" and body["answer"] == "Fredville [1]"
        # Step 1 is taken for the model: the collections were named, so they are read with
        # the question before the model chooses (a small model otherwise answers from memory).
        step = body["steps"][0]
        assert (step["action"], step["action_input"]) == (
            "retrieve",
            "What is the capital of Freedonia?",
        )
        assert len(body["steps"]) == 2 and fake.calls == 1
        said = fake.chat_requests[0].messages
        assert said[-2]["role"] == "assistant" and "Action: retrieve[What is" in said[-2]["content"]
        assert "Fredville" in said[-1]["content"]
        assert step["observation"].startswith("[1] freedonia.md / Freedonia handbook\n")
        assert "The capital of Freedonia is Fredville" in step["observation"]
        cited = body["details"]["sources"][0]
        assert cited["cited"] is True and cited["number"] == 1
        assert cited["source"] == "freedonia.md"
        assert cited["document_id"] == ingested.json()["document_id"]
        assert (cited["collection"], cited["heading"]) == ("handbook", "Freedonia handbook")
        # The model was offered retrieve, told which collection it reads.
        first = fake.chat_requests[0].text
        assert "retrieve[query]" in first and "Collections: handbook" in first
        stored = (await client.get(f"/runs/{body['run_id']}")).json()
        assert stored["details"]["sources"] == body["details"]["sources"]


async def test_retrieve_then_compute(app_client: AppFactory) -> None:
    """PAL's idea inside ReAct: the numbers come from a passage, the arithmetic from Python."""

    def script(request: FakeRequest) -> str:
        seen = observation(request)
        if not seen:
            return "Thought: find the figures\nAction: retrieve[tin mines employ]"
        if "3200 people" in seen:
            return "Thought: compute\nAction: python[print(3200 * 12)]"
        return "Thought: done\nAction: finish[" + seen.strip().split()[0] + " [1]]"

    pdf = make_pdf(["Intro.", "The tin mines employ 3200 people, each paid 12 crowns a day."])
    async with app_client(FakeOpenAI(script=script), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "reports"})
        await upload(client, "reports", "mines.pdf", pdf)
        body = (
            await client.post(
                "/ask",
                json={
                    "question": "What do the tin mines pay per day in total?",
                    "collections": ["reports"],
                },
            )
        ).json()
        assert [step["action"] for step in body["steps"]] == ["retrieve", "python", "finish"]
        assert body["answer"] == "38400 [1]"
        source = body["details"]["sources"][0]
        assert (source["source"], source["page"], source["cited"]) == ("mines.pdf", 2, True)


async def test_the_servers_default_collections_are_read_when_the_request_names_none(
    app_client: AppFactory,
) -> None:
    fake = _retrieving_model("capital", "Fredville")
    settings = {**RETRIEVE, "retrieve_collections": "handbook,absent"}
    async with app_client(fake, **settings) as client:
        await client.post("/collections", json={"name": "handbook"})
        await upload(client, "handbook", "freedonia.md", MARKDOWN.encode())
        body = (await client.post("/ask", json={"question": "Capital of Freedonia?"})).json()
        assert body["answer"] == "Fredville"
        # The server's defaults are offered, not read first: the model chose this query.
        assert (body["steps"][0]["action"], body["steps"][0]["action_input"]) == (
            "retrieve",
            "capital",
        )
        # "[]" reads none: retrieve is not offered, and the run says why.
        none = (
            await client.post("/ask", json={"question": "Capital of Freedonia?", "collections": []})
        ).json()
        assert "retrieve" in none["details"]["unavailable_actions"]


async def test_runs_that_cannot_read_collections_say_so(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI()) as client:  # retrieve not in ALLOWED_ACTIONS
        await client.post("/collections", json={"name": "docs"})
        refused = await client.post("/ask", json={"question": "q", "collections": ["docs"]})
        assert refused.status_code == 403 and "ALLOWED_ACTIONS" in refused.json()["detail"]
        plain = await client.post("/ask", json={"question": "q", "actions": ["retrieve"]})
        assert plain.status_code == 403
    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        narrowed = await client.post(
            "/ask", json={"question": "q", "actions": ["python"], "collections": ["docs"]}
        )
        assert narrowed.status_code == 422 and "include it in actions" in narrowed.text
        unknown = await client.post("/ask", json={"question": "q", "collections": ["nope"]})
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        bad = await client.post("/ask", json={"question": "q", "collections": ["a/b"]})
        assert bad.status_code == 422


async def test_retrieve_in_the_native_tools_protocol(app_client: AppFactory) -> None:
    from tests.fakes.llm import ToolCallReply

    def script(request: FakeRequest) -> Any:
        tool_results = [m for m in request.messages if m.get("role") == "tool"]
        if not tool_results:
            return ToolCallReply("retrieve", {"query": "capital of Freedonia"})
        seen = str(tool_results[-1]["content"])
        answer = "Fredville [1]" if "Fredville" in seen else "not found"
        return ToolCallReply("finish", {"answer": answer})

    fake = FakeOpenAI(script=script, tool_calls=True)
    async with app_client(fake, agent_protocol="tools", **RETRIEVE) as client:
        await client.post("/collections", json={"name": "handbook"})
        await upload(client, "handbook", "freedonia.md", MARKDOWN.encode())
        body = (
            await client.post(
                "/ask", json={"question": "Capital of Freedonia?", "collections": ["handbook"]}
            )
        ).json()
        assert body["answer"] == "Fredville [1]", json.dumps(body)[:2000]
        first = next(r for r in fake.chat_requests if "Freedonia" in r.text)
        names = [tool["function"]["name"] for tool in first.tools]
        assert "retrieve" in names
        assert body["details"]["sources"][0]["source"] == "freedonia.md"


async def test_pal_over_documents_computes_with_the_passages_numbers(
    app_client: AppFactory,
) -> None:
    """A pal run that names collections retrieves with the question first; its program's
    prompt holds the passages; the answer keeps them as sources."""

    def script(request: FakeRequest) -> str:
        turn = str(request.messages[-1]["content"])
        if "3200 people" in turn and "12 crowns" in turn:
            return "```python\ndef solution():\n    return 3200 * 12\n```"
        return "```python\ndef solution():\n    return 0\n```"

    fake = FakeOpenAI(script=script)
    pdf = make_pdf(["Intro.", "The tin mines employ 3200 people, each paid 12 crowns a day."])
    async with app_client(fake, **RETRIEVE) as client:
        await client.post("/collections", json={"name": "reports"})
        await upload(client, "reports", "mines.pdf", pdf)
        question = "How many crowns a day do the tin mines pay in total?"
        body = (
            await client.post(
                "/ask", json={"question": question, "mode": "pal", "collections": ["reports"]}
            )
        ).json()
        assert body["answer"] == "38400", body
        assert [step["action"] for step in body["steps"]] == ["retrieve", "python"]
        assert body["steps"][0]["observation"].startswith("[1] mines.pdf, page 2")
        assert body["details"]["sources"][0]["page"] == 2
        # Without collections the same question gets no passages (RETRIEVE_COLLECTIONS is for
        # react runs), and the program cannot know the numbers.
        plain = (await client.post("/ask", json={"question": question, "mode": "pal"})).json()
        assert plain["answer"] == "0" and "sources" not in plain["details"]


async def test_retrieve_in_the_json_protocol(app_client: AppFactory) -> None:
    """The opening retrieve is written as the JSON step the schema asks for, and the model's
    own JSON retrieve steps run too."""

    def script(request: FakeRequest) -> str:
        seen = observation(request)
        if "Trentino" in seen:
            step = {"thought": "t", "action": "finish", "action_input": "412 km [2]"}
        else:
            step = {"thought": "t", "action": "retrieve", "action_input": "Trentino river"}
        return json.dumps(step)

    fake = FakeOpenAI(script=script, enforces="llama_cpp")
    async with app_client(fake, agent_protocol="json", **RETRIEVE) as client:
        await client.post("/collections", json={"name": "atlas"})
        await upload(client, "atlas", "freedonia.md", MARKDOWN.encode())
        await upload(client, "atlas", "sylvania.html", HTML.encode())
        body = (
            await client.post(
                "/ask",
                json={
                    "question": "Which country is Fredville the capital of?",
                    "collections": ["atlas"],
                },
            )
        ).json()
    assert [step["action"] for step in body["steps"]] == ["retrieve", "retrieve", "finish"]
    assert body["answer"] == "412 km [2]"
    first = next(
        r for r in fake.chat_requests if "Which country is Fredville the capital of?" in r.text
    )
    opening = json.loads(first.messages[-2]["content"])
    assert (opening["action"], opening["action_input"]) == (
        "retrieve",
        "Which country is Fredville the capital of?",
    )
    cited = [source for source in body["details"]["sources"] if source["cited"]]
    assert [source["source"] for source in cited] == ["sylvania.html"]


async def test_a_search_reads_only_its_own_collections(tmp_path: Path) -> None:
    """The index narrows a query to its collections itself: another owner's passages that
    match better are never ranked, let alone returned."""
    from service.collections import Collections, prepare_document
    from service.store import RunStore

    store = RunStore(f"sqlite+aiosqlite:///{tmp_path}/index.db")
    await store.start()
    try:
        index = Collections(store)
        mine = await index.create("a", "handbook", "")
        theirs = await index.create("b", "handbook", "")
        ours = await prepare_document(MARKDOWN.encode(), "freedonia.md", max_pages=10)
        await index.add_document(mine, ours)
        loud = "Fredville capital Freedonia. " * 30
        await index.add_document(
            theirs, await prepare_document(loud.encode(), "b.txt", max_pages=1)
        )
        found = await index.search([mine["collection_id"]], "capital of Freedonia Fredville", 4)
        assert [p.source for p in found] == ["freedonia.md"]
        both = [mine["collection_id"], theirs["collection_id"]]
        assert {p.source for p in await index.search(both, "Fredville", 4)} == {
            "freedonia.md",
            "b.txt",
        }
        with pytest.raises(ValueError):
            await index.search(['x" OR "y'], "Fredville", 4)
    finally:
        await store.aclose()


async def test_the_same_content_twice_in_a_collection_is_refused(
    app_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its passages would otherwise come twice in every answer that finds them; and it is
    refused before it is parsed (pass FB: after seconds of cutting a 10 MB text)."""
    from service.routes import collections as routes

    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        await client.post("/collections", json={"name": "other"})
        first = await upload(client, "docs", "handbook.md", MARKDOWN.encode())
        prepare = routes.prepare_document

        async def refuse_to_parse(data: bytes, *args: Any, **kwargs: Any) -> Any:
            assert data != MARKDOWN.encode(), "a duplicate was parsed"
            return await prepare(data, *args, **kwargs)

        monkeypatch.setattr(routes, "prepare_document", refuse_to_parse)
        again = await upload(client, "docs", "copy-of-handbook.md", MARKDOWN.encode())
        assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
        document_id = first.json()["document_id"]
        assert again.json()["document_id"] == document_id
        assert again.headers["location"] == f"/collections/docs/documents/{document_id}"
        assert "'handbook.md'" in again.json()["detail"]
        as_text = await client.post(
            "/collections/docs/documents", json={"text": MARKDOWN, "source": "pasted"}
        )
        assert as_text.status_code == 409  # the same bytes, however they come
        monkeypatch.setattr(routes, "prepare_document", prepare)
        assert (await upload(client, "other", "handbook.md", MARKDOWN.encode())).status_code == 201
        listed = (await client.get("/collections/docs/documents")).json()["documents"]
        assert [d["source"] for d in listed] == ["handbook.md"]
        assert (
            await client.delete(f"/collections/docs/documents/{document_id}")
        ).status_code == 204
        assert (await upload(client, "docs", "handbook.md", MARKDOWN.encode())).status_code == 201


async def test_a_file_s_parsing_time_grows_with_its_size(
    app_client: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red-team pass CV: a 12 KB PDF of text operators that print nothing held a parsing
    place for the whole RETRIEVE_PARSE_TIMEOUT_S (60 s). A file gets 10 s and 10 s a MiB."""
    assert collections_module.parse_budget_s(12_000, 60.0) == pytest.approx(10.11, abs=0.01)
    assert collections_module.parse_budget_s(3 << 20, 60.0) == 40.0
    assert collections_module.parse_budget_s(10 << 20, 60.0) == 60.0  # the operator's most
    assert collections_module.parse_budget_s(0, 5.0) == 5.0
    given: list[float] = []
    real = routes_collections.prepare_document

    async def prepare(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs["timeout_s"])
        return await real(*args, **kwargs)

    monkeypatch.setattr(routes_collections, "prepare_document", prepare)
    async with app_client(FakeOpenAI(), **RETRIEVE) as client:
        await client.post("/collections", json={"name": "docs"})
        assert (await upload(client, "docs", "a.pdf", make_pdf(["words"]))).status_code == 201
    assert len(given) == 1 and 10.0 <= given[0] < 10.1, given
