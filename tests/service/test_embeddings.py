"""Vector ranking for ``retrieve`` (EMBEDDINGS_BASE_URL): the service's real ``Embedder``
(real openai client) against a fake embeddings server, over a real SQLite store; and end to
end through the app, where the background sweep embeds what was ingested.

The fake (``tests.fakes.embeddings``) places synonyms together, so a question that shares no
word with its passage is found by vectors and missed by BM25: each test that says "found by
vectors" has its BM25-alone control."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from sqlalchemy import func, select

from service import collections as collections_module
from service.collections import Collections, fuse, prepare_document, vectors_table
from service.embeddings import Embedder, EmbeddingsUnavailable
from service.store import RunStore
from tests.fakes import FakeOpenAI
from tests.fakes.embeddings import FakeEmbeddings, concept_vector
from tests.fakes.llm import FakeRequest
from tests.service.conftest import AppFactory
from tests.service.test_collections_api import RETRIEVE, observation, upload
from tools.retrieve.tool import Passage

QUESTION = "Can troops be lodged in my home without permission?"
# The answer shares no word with QUESTION (stemmed or not); the distractor shares many.
ANSWER = (
    "No Soldier shall, in time of peace, be quartered in any house, but with the Owner's consent."
)
DISTRACTOR = "Troops can travel without delay; my home town can see them."
NOISE = [
    "The capital of Freedonia is Fredville, on the river Marx.",
    "Freedonia exports mustard and tin from its northern mines.",
    "Winters are mild; summers are dry and long.",
]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each index test on SQLite and on a real Postgres (its upsert, its bytea)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite+aiosqlite:///{tmp_path}/runs.db"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[RunStore]:
    store = RunStore(store_url)
    await store.start()
    try:
        yield store
    finally:
        await store.aclose()


async def ingest(library: Collections, collection: dict[str, Any], texts: list[str]) -> list[str]:
    ids = []
    for number, text in enumerate(texts):
        new = await prepare_document(text.encode(), f"doc{number}.txt", max_pages=10)
        ids.append((await library.add_document(collection, new))["document_id"])
    return ids


async def vector_rows(store: RunStore) -> list[tuple[int, str]]:
    async with store.reading() as session:
        rows = await session.execute(select(vectors_table.c.chunk_id, vectors_table.c.model))
        return [(row[0], row[1]) for row in rows]


# -- the client ---------------------------------------------------------------------------------


async def test_texts_are_embedded_in_batches_in_order() -> None:
    fake = FakeEmbeddings()
    embedder = fake.embedder(batch=8)
    texts = [f"text number {n}" for n in range(20)]
    vectors = await embedder.embed(texts)
    assert [len(batch) for batch in fake.requests] == [8, 8, 4]
    assert len(vectors) == 20 and all(abs(float(v @ v) - 1.0) < 1e-5 for v in vectors)
    again = await embedder.embed_query("text number 13")
    assert float(again @ vectors[13]) == pytest.approx(1.0, abs=1e-5)
    await embedder.aclose()


def _answer(data: list[dict[str, Any]]) -> Any:
    return lambda body: {"object": "list", "model": body["model"], "data": data}


@pytest.mark.parametrize(
    "answer",
    [
        _answer([]),  # no vectors
        _answer([{"index": 0, "embedding": [1.0, 0.0]}]),  # one vector for two inputs
        _answer([{"index": 0, "embedding": [1.0, 0.0]}, {"index": 0, "embedding": [0.0, 1.0]}]),
        _answer([{"index": 0, "embedding": [1.0, 0.0]}, {"index": 1, "embedding": [1.0]}]),
        _answer([{"index": 0, "embedding": "AAAA"}, {"index": 1, "embedding": "AAAA"}]),
        _answer([{"index": 0, "embedding": ["a", 1]}, {"index": 1, "embedding": [1, 2]}]),
        _answer([{"index": 0, "embedding": [1e308, 1e308]}, {"index": 1, "embedding": [1, 2]}]),
        _answer([{"index": 0, "embedding": [10**400, 1]}, {"index": 1, "embedding": [1, 2]}]),
        _answer([{"index": 0, "embedding": []}, {"index": 1, "embedding": []}]),
        _answer([{"embedding": [1.0]}, {"embedding": [2.0]}]),  # no index
        lambda body: {"object": "list", "data": "nope"},
        lambda body: ["not", "an", "object"],
    ],
)
async def test_an_answer_that_is_not_one_vector_per_input_is_refused(answer: Any) -> None:
    fake = FakeEmbeddings()
    fake.answer = answer
    embedder = fake.embedder()
    with pytest.raises(EmbeddingsUnavailable):
        await embedder.embed(["one", "two"])
    await embedder.aclose()


async def test_vectors_per_token_are_refused_with_the_reason() -> None:
    """What llama_cpp.server answers for a chat model (no pooling), seen here: a vector per
    token of each input."""
    fake = FakeEmbeddings()
    fake.answer = _answer([{"index": i, "embedding": [[0.1, 0.2], [0.3, 0.4]]} for i in range(2)])
    embedder = fake.embedder()
    with pytest.raises(EmbeddingsUnavailable, match="one vector per token"):
        await embedder.embed(["hello world", "second"])
    await embedder.aclose()


async def test_a_server_that_fails_is_unavailable_not_an_error() -> None:
    fake = FakeEmbeddings()
    fake.down = True
    embedder = fake.embedder()
    with pytest.raises(EmbeddingsUnavailable, match="HTTP 503"):
        await embedder.embed_query("anything")
    await embedder.aclose()
    nobody = Embedder("http://127.0.0.1:9/v1", "m", timeout_s=1.0, max_retries=0)
    with pytest.raises(EmbeddingsUnavailable, match="cannot connect"):
        await nobody.embed_query("anything")
    await nobody.aclose()


# -- the index ----------------------------------------------------------------------------------


async def test_vectors_find_the_passage_bm25_cannot(store: RunStore) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder())
    collection = await library.create("", "rights", "")
    await ingest(library, collection, [DISTRACTOR, ANSWER, *NOISE])
    assert await library.embed_pending() == 5
    ids = [collection["collection_id"]]

    lexical = await library.lexical(ids, QUESTION, 5)
    assert ANSWER not in [passage.text for passage in lexical]  # the control: no shared word
    semantic = await library.semantic(ids, QUESTION, 5)
    assert semantic[0].text == ANSWER
    fused = await library.search(ids, QUESTION, 2)
    assert ANSWER in [passage.text for passage in fused]
    assert [passage.score for passage in fused] == sorted(
        (passage.score for passage in fused), reverse=True
    )
    # Without an embeddings model the same question does not find it.
    alone = await Collections(store).search(ids, QUESTION, 2)
    assert ANSWER not in [passage.text for passage in alone]


def _passage(chunk_id: int) -> Passage:
    return Passage(chunk_id, "c", "d", "s", None, 0, 1, None, f"text {chunk_id}", 0.0)


def test_fusion_adds_reciprocal_ranks() -> None:
    lexical = [_passage(1), _passage(2), _passage(3)]
    semantic = [_passage(3), _passage(4), _passage(1)]
    fused = fuse([lexical, semantic], 3)
    # 1: 1/61 + 1/63; 3: 1/63 + 1/61 (a tie, by id); 2 and 4: 1/62 each.
    assert [passage.chunk_id for passage in fused] == [1, 3, 2]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert fuse([[], []], 5) == []


async def test_each_passage_is_embedded_once_and_again_after_a_model_change(
    store: RunStore,
) -> None:
    fake = FakeEmbeddings()
    first = Collections(store, fake.embedder("model-a", batch=2))
    collection = await first.create("", "docs", "")
    await ingest(first, collection, [ANSWER, *NOISE])
    assert await first.embed_pending() == 4
    sizes = [len(batch) for batch in fake.batches]  # from a random passage, then from the first
    assert sum(sizes) == 4 and max(sizes) == 2
    assert await first.embed_pending() == 0  # nothing left: no request
    assert len(fake.batches) == len(sizes)
    documents = await first.documents(collection)
    assert [(d["chunks"], d["embedded"]) for d in documents] == [(1, 1)] * 4

    second = Collections(store, fake.embedder("model-b", batch=3))
    assert [d["embedded"] for d in await second.documents(collection)] == [0] * 4
    assert await second.embed_pending() == 4  # all of them, for the new model
    rows = await vector_rows(store)
    assert len(rows) == 4 and {model for _, model in rows} == {"model-b"}  # replaced, not added
    semantic = await second.semantic([collection["collection_id"]], QUESTION, 1)
    assert semantic[0].text == ANSWER


async def test_a_failing_server_leaves_ingestion_and_bm25_working(store: RunStore) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder())
    collection = await library.create("", "docs", "")
    fake.down = True
    await ingest(library, collection, [ANSWER, *NOISE])  # ingestion never calls the server
    assert fake.requests == []
    with pytest.raises(EmbeddingsUnavailable):
        await library.embed_pending()
    assert await vector_rows(store) == []
    ids = [collection["collection_id"]]
    with structlog.testing.capture_logs() as logs:
        found = await library.search(ids, "capital of Freedonia", 2)
    assert found[0].text.startswith("The capital of Freedonia")  # BM25 alone
    assert [log["event"] for log in logs] == ["retrieve ranks by BM25 alone: no query vector"]
    assert "HTTP 503" in logs[0]["reason"]
    fake.down = False
    assert await library.embed_pending() == 4  # caught up once the server is back


async def test_the_background_sweep_embeds_new_documents_and_survives_failures(
    store: RunStore,
) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder())
    collection = await library.create("", "docs", "")
    fake.down = True
    sweep = asyncio.create_task(library.keep_embedding(poll_s=60))
    try:
        await ingest(library, collection, [ANSWER])
        await eventually(lambda: bool(fake.requests))
        assert await vector_rows(store) == []  # tried, failed, kept going (backing off)
        assert not sweep.done()
        fake.down = False
        sweep.cancel()
        sweep = asyncio.create_task(library.keep_embedding(poll_s=60))
        await eventually(vector_rows, store, count=1)
        await ingest(library, collection, NOISE)  # woken by the ingest, not by the poll
        await eventually(vector_rows, store, count=4)
        assert not sweep.done()
    finally:
        sweep.cancel()


async def eventually(
    check: Any, *args: Any, count: int | None = None, within_s: float = 10
) -> None:
    """Wait until ``check(*args)`` (awaited if it is a coroutine) is true, or has ``count``
    items; fail after ``within_s``."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        got = check(*args)
        if asyncio.iscoroutine(got):
            got = await got
        if (len(got) == count) if count is not None else got:
            return
        assert asyncio.get_running_loop().time() < deadline, f"still {got!r}"
        await asyncio.sleep(0.02)


async def test_deleting_documents_and_collections_deletes_their_vectors(store: RunStore) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder())
    kept = await library.create("", "kept", "")
    gone = await library.create("", "gone", "")
    kept_ids = await ingest(library, kept, [ANSWER, NOISE[0]])
    await ingest(library, gone, NOISE)
    assert await library.embed_pending() == 5
    assert await library.delete_document(kept, kept_ids[0])
    assert len(await vector_rows(store)) == 4
    assert await library.delete("", "gone")
    assert len(await vector_rows(store)) == 1
    found = await library.semantic([kept["collection_id"]], QUESTION, 5)
    assert [passage.text for passage in found] == [NOISE[0]]


async def test_vectors_of_another_size_are_skipped_until_replaced(store: RunStore) -> None:
    fake = FakeEmbeddings(dimensions=16)
    library = Collections(store, fake.embedder("same-name"))
    collection = await library.create("", "docs", "")
    await ingest(library, collection, [ANSWER, *NOISE])
    await library.embed_pending()
    fake.dimensions = 64  # the server's model changed under the same name
    ids = [collection["collection_id"]]
    assert await library.semantic(ids, QUESTION, 3) == []
    fused = await library.search(ids, "capital of Freedonia", 1)  # BM25 still ranks
    assert fused[0].text.startswith("The capital of Freedonia")
    async with store.reading() as session:
        count = await session.scalar(select(func.count()).select_from(vectors_table))
    assert count == 4
    assert await library.embed_pending() == 4  # the next sweep replaces them
    assert (await library.semantic(ids, QUESTION, 1))[0].text == ANSWER
    assert await library.embed_pending() == 0


async def test_the_sweep_outlives_a_bug_of_its_own(store: RunStore) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder())
    collection = await library.create("", "docs", "")
    real = library.embed_pending
    calls = 0

    async def broken_once() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return await real()

    library.embed_pending = broken_once  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        sweep = asyncio.create_task(library.keep_embedding(poll_s=60, first_backoff_s=0.01))
        try:
            await ingest(library, collection, [ANSWER])
            await eventually(vector_rows, store, count=1)
        finally:
            sweep.cancel()
    assert calls >= 2
    assert any(log["log_level"] == "error" and log.get("exc_info") for log in logs)


# -- through the app ----------------------------------------------------------------------------


def _model_that_answers_if(needle: str) -> FakeOpenAI:
    """Answers citing the passage that holds ``needle``, if one was shown."""

    def script(request: FakeRequest) -> str:
        shown = re.split(r"(?m)^\[(\d+)\] ", observation(request))
        for number, passage in zip(shown[1::2], shown[2::2], strict=True):
            if needle in passage:
                return f"Thought: passage {number} says so\nAction: finish[No [{number}]]"
        return "Thought: not found\nAction: finish[not found]"

    return FakeOpenAI(script=script)


async def _ask_after_ingest(client: Any) -> dict[str, Any]:
    await client.post("/collections", json={"name": "rights"})
    for number, text in enumerate([DISTRACTOR, ANSWER, *NOISE]):
        made = await upload(client, "rights", f"doc{number}.txt", text.encode())
        assert made.status_code == 201 and made.json()["embedded"] == 0
    return (
        await client.post("/ask", json={"question": QUESTION, "collections": ["rights"]})
    ).json()


async def test_ingest_then_ask_finds_the_passage_by_its_meaning(app_client: AppFactory) -> None:
    fake = FakeEmbeddings()
    settings = {**RETRIEVE, "retrieve_top_k": 2}
    async with app_client(
        _model_that_answers_if("quartered"), embedder=fake.embedder(), **settings
    ) as client:
        await client.post("/collections", json={"name": "rights"})
        for number, text in enumerate([DISTRACTOR, ANSWER, *NOISE]):
            made = await upload(client, "rights", f"doc{number}.txt", text.encode())
            assert made.status_code == 201

        async def documents() -> list[dict[str, Any]]:
            listed = await client.get("/collections/rights/documents")
            return list(listed.json()["documents"])

        async def all_embedded() -> bool:  # the app's background sweep embeds them
            return all(d["embedded"] == d["chunks"] for d in await documents())

        await eventually(all_embedded)
        collection = (await client.get("/collections/rights")).json()
        assert collection["chunks"] == collection["embedded"] == 5
        assert all(d["embedded"] == d["chunks"] == 1 for d in await documents())
        body = (
            await client.post("/ask", json={"question": QUESTION, "collections": ["rights"]})
        ).json()
    assert body["status"] == "finished" and body["answer"].startswith("No [")
    cited = [source for source in body["details"]["sources"] if source["cited"]]
    assert [source["source"] for source in cited] == ["doc1.txt"]


async def test_without_embeddings_the_same_question_is_not_found(app_client: AppFactory) -> None:
    """The control for the test above: BM25 alone cannot find it."""
    async with app_client(
        _model_that_answers_if("quartered"), **{**RETRIEVE, "retrieve_top_k": 2}
    ) as client:
        body = await _ask_after_ingest(client)
    assert body["answer"] == "not found"


async def test_a_passage_deleted_while_it_was_embedded_leaves_no_vector(store: RunStore) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder("m"))
    collection = await library.create("", "docs", "")
    ids = await ingest(library, collection, [ANSWER, NOISE[0]])
    batch = await library._pending("m", 10)  # the sweep's read, then the document goes
    vectors = await library.embedder.embed([row[3] for row in batch])  # type: ignore[union-attr]
    assert await library.delete_document(collection, ids[0])
    await library._store_vectors("m", batch, vectors)
    assert len(await vector_rows(store)) == 1


async def test_a_sweep_that_starts_midway_turns_back_for_the_rest(store: RunStore) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder(batch=2))
    collection = await library.create("", "docs", "")
    await ingest(library, collection, [ANSWER, DISTRACTOR, *NOISE])
    (last,) = await library._pending("fake-embed", 1, after=10**9 - 1) or [None]
    chunk_ids = sorted(row[0] for row in await library._pending("fake-embed", 10))
    assert last is None and len(chunk_ids) == 5
    assert await library.embed_pending(start_at=chunk_ids[-1]) == 5
    assert [len(batch) for batch in fake.batches] == [1, 2, 2]  # the last, then from the first
    assert await library.embed_pending() == 0


async def two_sweeps(store: RunStore, second_starts_at: int) -> tuple[list[int], int]:
    """Two processes' sweeps over 40 new passages, the second from the ``second_starts_at``th:
    what each embedded, and how many passages the server was asked for."""
    fake = FakeEmbeddings()
    one = Collections(store, fake.embedder(batch=4))
    two = Collections(store, fake.embedder(batch=4))
    collection = await one.create("", "docs", "")
    await ingest(one, collection, [f"passage {n} about {NOISE[n % 3]}" for n in range(40)])
    chunk_ids = sorted(row[0] for row in await one._pending("fake-embed", 100))
    done = await asyncio.gather(
        one.embed_pending(start_at=chunk_ids[0]),
        two.embed_pending(start_at=chunk_ids[second_starts_at]),
    )
    assert len(await vector_rows(store)) == 40
    return list(done), sum(len(batch) for batch in fake.batches)


async def test_two_processes_sweeps_share_a_backlog(store: RunStore) -> None:
    """Each worker process runs a sweep; starting apart, they do not embed the same
    passages twice (but for where they meet)."""
    done, asked = await two_sweeps(store, 20)
    assert sum(done) == asked and asked <= 40 + 2 * 4


async def test_two_sweeps_from_the_same_passage_do_not_go_on_in_step(store: RunStore) -> None:
    """Sweeps that meet (here: from the start) do not embed batch for batch behind each
    other: the one that finds its batch already stored stops."""
    done, asked = await two_sweeps(store, 0)
    assert sum(done) == asked and asked <= 40 + 2 * 4, done


async def test_readyz_shows_the_embeddings_server_without_requiring_it(
    app_client: AppFactory,
) -> None:
    fake = FakeEmbeddings()
    async with app_client(FakeOpenAI(), embedder=fake.embedder("emb-1"), **RETRIEVE) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["embeddings"] == {
            "ok": True,
            "required": False,
            "model": "emb-1",
        }
    fake.down = True
    async with app_client(FakeOpenAI(), embedder=fake.embedder("emb-1"), **RETRIEVE) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # runs go on: retrieve ranks by BM25 meanwhile
        check = ready.json()["checks"]["embeddings"]
        assert check["ok"] is False and "HTTP 503" in check["reason"]


async def test_a_cached_matrix_is_read_again_when_its_vectors_change(store: RunStore) -> None:
    """Each process keeps a collection's vectors between queries, keyed by the collection's
    ``vectors_version``; passage ids can be reused (SQLite), so nothing less will do."""
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder())
    reads = 0
    read_vectors = library._read_vectors

    async def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read_vectors(*args)

    library._read_vectors = counted  # type: ignore[method-assign]
    collection = await library.create("", "docs", "")
    ids = [collection["collection_id"]]
    *_, answer_id = await ingest(library, collection, [*NOISE, ANSWER])
    await library.embed_pending()
    assert (await library.semantic(ids, QUESTION, 1))[0].text == ANSWER
    assert (await library.semantic(ids, QUESTION, 1))[0].text == ANSWER
    assert reads == 1  # the second query used the cached matrix

    assert await library.delete_document(collection, answer_id)
    mustard = "Mustard is exported by sea."
    await ingest(library, collection, [mustard])  # on SQLite it may take the deleted id
    texts = [passage.text for passage in await library.semantic(ids, QUESTION, 5)]
    assert ANSWER not in texts and mustard not in texts  # not embedded yet
    await library.embed_pending()
    found = {p.text: p.score for p in await library.semantic(ids, QUESTION, 5)}
    question, vector = (np.array(concept_vector(text)) for text in (QUESTION, mustard))
    expected = float(question @ vector / np.linalg.norm(question) / np.linalg.norm(vector))
    assert found[mustard] == pytest.approx(expected, abs=1e-5)  # its own vector, not ANSWER's
    assert reads == 3


async def test_a_collection_with_more_vectors_than_memory_allows_ranks_by_bm25(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEmbeddings()
    library = Collections(store, fake.embedder())
    small = await library.create("", "small", "")
    big = await library.create("", "big", "")
    await ingest(library, small, [ANSWER])
    await ingest(library, big, [ANSWER, *NOISE])
    await library.embed_pending()
    # Room for one passage's vector (64 float32 and its id), not for four.
    monkeypatch.setattr(collections_module, "VECTOR_CACHE_BYTES", 2 * (64 * 4 + 8))
    with structlog.testing.capture_logs() as logs:
        assert await library.semantic([big["collection_id"]], QUESTION, 3) == []
        found = await library.semantic([small["collection_id"], big["collection_id"]], QUESTION, 3)
        fused = await library.search([big["collection_id"]], "capital of Freedonia", 1)
    assert [passage.text for passage in found] == [ANSWER]  # the small one still has vectors
    assert fused[0].text.startswith("The capital of Freedonia")  # BM25 still ranks the big one
    warned = [log for log in logs if log["event"].startswith("retrieve ranks a collection")]
    assert len(warned) == 1 and warned[0]["vectors"] == 4  # once, until its vectors change
