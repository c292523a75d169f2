"""Document collections and their full-text index, in the run store's database.

A collection belongs to the API key that made it (its ``owner``), like a run: another key
gets 404. A document's passages are stored a batch to a transaction and its row last, in
one short transaction; every reader joins passages to their document's row, so none is seen
before all are in, and a failed ingestion leaves nothing half-indexed; deleting a collection
deletes its documents and passages in one transaction.

Ranking is the database's own full-text search: SQLite's FTS5 with BM25 (the index is kept by
triggers, ``migrations/versions/0004``), Postgres's ``tsvector`` with ``ts_rank_cd``. A query is
never handed to either query language as written: it is cut into words, which are quoted
(FTS5) or joined as plain lexemes (Postgres), and any of them may match (OR), ranked by how
well.

With an ``Embedder`` (``EMBEDDINGS_BASE_URL``) passages are also ranked by the cosine of their
vector with the query's, and the two rankings are joined by reciprocal-rank fusion (each
passage scores the sum of ``1 / (60 + rank)`` over the rankings it is in, Cormack et al. 2009).
Vectors live in ``chunk_vectors`` (``migrations/versions/0005``), one per passage, tagged with
the model that made it; ``embed_pending`` embeds, in batches, every passage that has none of
the configured model (new documents, or all of them after a model change) and
``keep_embedding`` runs it in the background, so ingestion never waits for, nor fails with, the
embeddings server. A passage not embedded yet still ranks by BM25; an embeddings server that
does not answer leaves a query to BM25 alone, with a warning in the logs. The cosine is
computed here (numpy, exact, over the collections' vectors): sqlite-vec cannot be loaded by a
Python whose ``sqlite3`` lacks ``enable_load_extension`` (this project's), and pgvector is an
extension the operator's Postgres may not have.

    StoreUnavailable (service.store)   the database cannot be read or written
    CollectionExists                   409: the owner has a collection of that name
    TooMany                            409: a per-owner or per-collection bound is reached
    DuplicateDocument                  409: the collection holds the same content already
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cachetools
import numpy as np
import numpy.typing as npt
import structlog
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service.embeddings import Embedder, EmbeddingsUnavailable, Vector, pack, unpack
from service.store import RunStore, StoreUnavailable, metadata
from tools.base import ToolUnavailable
from tools.retrieve.chunk import Chunk, passages
from tools.retrieve.extract import MEDIA_TYPES, Kind, Section, detect
from tools.retrieve.tool import Passage

log = structlog.get_logger(__name__)

MAX_COLLECTIONS_PER_OWNER = 100
MAX_DOCUMENTS_PER_COLLECTION = 10_000
_MAX_TERMS = 32
FUSION_POOL = 50  # passages each ranking contributes to the fusion
RRF_K = 60  # the reciprocal-rank fusion constant (Cormack, Clarke and Buettcher, SIGIR 2009)
# Passages stored to a write transaction while a document is added: each holds the
# database's one write lock for ~0.1 s, and other writers go in between
STAGE_BATCH = 500
TIDY_EVERY_S = 1200.0  # a document still unfinished this long after it was seen so is dropped
EMBED_POLL_S = 30.0  # the background sweep also looks this often (another process's ingests)
EMBED_BACKOFF_MAX_S = 300.0
DIMENSIONS_PROBE = "how many dimensions"  # embedded when a sweep does not know the size yet
EMBED_PROGRESS_S = 5.0  # a progress line at most this often while a sweep embeds
# Per process, and the most one collection's vectors may take: ~500,000 passages of 256
# dimensions, ~87,000 of 1,536 (a bigger collection ranks by BM25 alone).
VECTOR_CACHE_BYTES = 512 * 1024 * 1024
_WORD = re.compile(r"\w+")
_HEX_ID = re.compile(r"[0-9a-f]{1,40}")
# Words that carry no meaning for ranking; FTS5 has no stop list of its own (Postgres's
# english configuration drops its own).
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "does",
        "did",
        "do",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)

collections_table = Table(
    "collections",
    metadata,
    Column("collection_id", String(40), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Bumped whenever its vectors change (0005): the key of each process's cached matrix.
    Column("vectors_version", Integer, nullable=False, server_default="0"),
)
documents_table = Table(
    "documents",
    metadata,
    Column("document_id", String(40), primary_key=True),
    Column("collection_id", String(40), nullable=False, index=True),
    Column("source", String(300), nullable=False),
    Column("media_type", String(40), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("pages", Integer, nullable=True),
    Column("chunks", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
chunks_table = Table(
    "chunks",
    metadata,
    Column("chunk_id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", String(40), nullable=False, index=True),
    Column("collection_id", String(40), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("page", Integer, nullable=True),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("heading", Text, nullable=True),
    Column("text", Text, nullable=False),
)

vectors_table = Table(
    "chunk_vectors",
    metadata,
    Column("chunk_id", Integer, primary_key=True),
    Column("collection_id", String(40), nullable=False),
    Column("model", String(200), nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Index("ix_chunk_vectors_collection_model", "collection_id", "model"),
)


class CollectionExists(Exception):
    """The owner already has a collection with that name."""


class TooMany(Exception):
    """A bound on collections or documents is reached; the message says which."""


class DuplicateDocument(Exception):
    """The collection already holds a document with the same content (its sha256)."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(document["document_id"])
        self.document = document


@dataclass(frozen=True, slots=True)
class NewDocument:
    source: str
    media_type: str
    size: int
    pages: int | None
    sha256: str
    chunks: Sequence[Chunk]
    kind: Kind | None = None
    sections: Sequence[Section] = ()  # the text the passages were cut from


# Wall clock to parse an HTML or PDF file: a base and a rate by its size, up to the
# operator's RETRIEVE_PARSE_TIMEOUT_S. A 200-page PDF parses in 0.4 s; a 12 KB one made of
# text operators that print nothing had the whole minute (red-team pass CV).
PARSE_BASE_S = 10.0
PARSE_S_PER_MIB = 10.0


def parse_budget_s(size: int, most_s: float) -> float:
    """The time a file of ``size`` bytes may take to parse."""
    return min(most_s, PARSE_BASE_S + PARSE_S_PER_MIB * size / (1 << 20))


async def prepare_document(
    data: bytes,
    source: str,
    declared: str | None = None,
    *,
    max_pages: int,
    timeout_s: float = 60.0,
) -> NewDocument:
    """A file as it will be stored: its kind told by its content, its text read (HTML and PDF
    in the confined child), cut into passages (a long text in the child too, a short one on a
    thread). Raises ``IngestError``."""
    kind = detect(data, source, declared)
    found, pieces = await passages(data, kind, max_pages=max_pages, timeout_s=timeout_s)
    return NewDocument(
        source=source,
        media_type=MEDIA_TYPES[kind],
        size=len(data),
        pages=len(found) if kind == "pdf" else None,
        sha256=hashlib.sha256(data).hexdigest(),
        chunks=pieces,
        kind=kind,
        sections=found,
    )


def _iso(moment: dt.datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth matching: lower-case, stop words dropped (unless nothing
    else is left), each once, at most ``_MAX_TERMS``."""
    words = list(dict.fromkeys(word.casefold() for word in _WORD.findall(query)))
    kept = [word for word in words if word not in _STOP] or words
    return [word[:64] for word in kept[:_MAX_TERMS]]


class Collections:
    """Collections, documents and passage search over one ``RunStore``'s database."""

    def __init__(self, store: RunStore, embedder: Embedder | None = None) -> None:
        self._store = store
        self.embedder = embedder
        self._wake = asyncio.Event()  # a document was added: the sweep need not wait its poll
        # Each collection's vectors as last read, so a query does not read them all again
        # while they have not changed (``vectors_version``); least recently used go first.
        self._vectors: cachetools.LRUCache[tuple[str, str], _Vectors] = cachetools.LRUCache(
            maxsize=VECTOR_CACHE_BYTES, getsizeof=lambda vectors: vectors.nbytes
        )

    # -- collections ----------------------------------------------------------------------------

    async def create(self, owner: str, name: str, description: str) -> dict[str, Any]:
        return await self._store.detach(self._create(owner, name, description))

    async def _create(self, owner: str, name: str, description: str) -> dict[str, Any]:
        row = {
            "collection_id": uuid.uuid4().hex,
            "owner": owner,
            "name": name,
            "description": description,
            "created_at": dt.datetime.now(dt.UTC),
        }
        try:
            async with self._store.writing() as session:
                count = await session.scalar(
                    select(func.count()).where(collections_table.c.owner == owner)
                )
                if (count or 0) >= MAX_COLLECTIONS_PER_OWNER:
                    raise TooMany(f"you have {MAX_COLLECTIONS_PER_OWNER} collections, the limit")
                await session.execute(insert(collections_table).values(**row))
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise CollectionExists(name) from exc
            raise
        return {**_collection(row), "documents": 0, "chunks": 0, "embedded": 0}

    async def get(self, owner: str, name: str) -> dict[str, Any] | None:
        """The owner's collection ``name`` with its document and passage counts, or None."""
        found = await self.find(owner, names=[name])
        return found[0] if found else None

    async def find(self, owner: str, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The owner's collections (only ``names`` when given), by name."""
        return await self._store.detach(self._list(owner, names))

    async def _list(self, owner: str, names: Sequence[str] | None) -> list[dict[str, Any]]:
        documents = (
            select(
                documents_table.c.collection_id,
                func.count().label("documents"),
                func.coalesce(func.sum(documents_table.c.chunks), 0).label("chunks"),
            )
            .group_by(documents_table.c.collection_id)
            .subquery()
        )
        if self.embedder is None:
            embedded: Any = literal(0)
        else:
            embedded = (
                select(func.count())
                .select_from(vectors_table)
                .where(
                    vectors_table.c.collection_id == collections_table.c.collection_id,
                    vectors_table.c.model == self.embedder.model,
                )
                .scalar_subquery()
            )
        statement = (
            select(
                collections_table,
                documents.c.documents,
                documents.c.chunks,
                embedded.label("embedded"),
            )
            .outerjoin(documents, documents.c.collection_id == collections_table.c.collection_id)
            .where(collections_table.c.owner == owner)
            .order_by(collections_table.c.name)
        )
        if names is not None:
            statement = statement.where(collections_table.c.name.in_(list(names)))
        async with self._store.reading() as session:
            rows = (await session.execute(statement)).mappings().all()
        return [
            {
                **_collection(row),
                "documents": row["documents"] or 0,
                "chunks": row["chunks"] or 0,
                "embedded": row["embedded"] or 0,
            }
            for row in rows
        ]

    async def delete(self, owner: str, name: str) -> bool:
        return await self._store.detach(self._delete(owner, name))

    async def _delete(self, owner: str, name: str) -> bool:
        async with self._store.writing() as session:
            collection_id = await session.scalar(
                select(collections_table.c.collection_id).where(
                    collections_table.c.owner == owner, collections_table.c.name == name
                )
            )
            if collection_id is None:
                return False
            await session.execute(
                delete(vectors_table).where(vectors_table.c.collection_id == collection_id)
            )
            await session.execute(
                delete(chunks_table).where(chunks_table.c.collection_id == collection_id)
            )
            await session.execute(
                delete(documents_table).where(documents_table.c.collection_id == collection_id)
            )
            await session.execute(
                delete(collections_table).where(collections_table.c.collection_id == collection_id)
            )
        return True

    # -- documents ------------------------------------------------------------------------------

    async def check_room(self, collection: dict[str, Any], sha256: str) -> None:
        """Whether a document with this content could be added, asked before it is parsed
        (``add_document`` asks again): a duplicate was refused only after seconds of parsing
        and cutting a 10 MB text, while other clients' requests waited (red-team pass FB).
        Raises ``LookupError``, ``TooMany`` or ``DuplicateDocument``."""
        await self._store.detach(self._check_room(collection, sha256))

    async def _check_room(self, collection: dict[str, Any], sha256: str) -> None:
        async with self._store.reading() as session:
            await _check_room(session, collection, sha256)

    async def add_document(self, collection: dict[str, Any], new: NewDocument) -> dict[str, Any]:
        """Store a document and all its passages: the passages first, ``STAGE_BATCH`` to a
        write transaction, then the document's row in one short transaction of its own.
        Every reader of passages joins them to their document's row, so none is seen before
        all are in, and none is left if any step fails. One transaction for all of them held
        the database's one write lock while a 10 MB text was indexed: another client's
        ``/ask`` waited 21-55 s to store its run (red-team pass EF)."""
        return await self._store.detach(self._add_document(collection, new))

    async def _add_document(self, collection: dict[str, Any], new: NewDocument) -> dict[str, Any]:
        collection_id = collection["collection_id"]
        row = {
            "document_id": uuid.uuid4().hex,
            "collection_id": collection_id,
            "source": new.source,
            "media_type": new.media_type,
            "bytes": new.size,
            "pages": new.pages,
            "chunks": len(new.chunks),
            "sha256": new.sha256,
            "created_at": dt.datetime.now(dt.UTC),
        }
        passages = [
            {
                "document_id": row["document_id"],
                "collection_id": collection_id,
                "seq": seq,
                "page": piece.page,
                "start": piece.start,
                "end": piece.end,
                "heading": piece.heading,
                "text": piece.text,
            }
            for seq, piece in enumerate(new.chunks)
        ]
        async with self._store.reading() as session:  # early: before the long part
            await _check_room(session, collection, new.sha256)
        try:
            for start in range(0, len(passages), STAGE_BATCH):
                async with self._store.writing() as session:
                    await session.execute(
                        insert(chunks_table), passages[start : start + STAGE_BATCH]
                    )
            async with self._store.writing() as session:
                # the collection's row first: a no-op write that holds it (SQLite: the whole
                # database) to the end, so two processes' checks and rows come one after the
                # other (WORKERS=2 stored the same content twice, pass EF)
                held = await session.execute(
                    update(collections_table)
                    .where(collections_table.c.collection_id == collection_id)
                    .values(collection_id=collections_table.c.collection_id)
                )
                if not held.rowcount:  # type: ignore[attr-defined]
                    raise LookupError(collection["name"])  # deleted meanwhile
                await _check_room(session, collection, new.sha256)
                staged = await session.scalar(
                    select(func.count()).where(chunks_table.c.document_id == row["document_id"])
                )
                if staged != len(passages):  # another process swept them as left over
                    raise StoreUnavailable("the document's passages were not all stored")
                await session.execute(insert(documents_table).values(**row))
        except BaseException:
            await self._store.detach(self._drop_passages(collection_id, row["document_id"]))
            raise
        self._wake.set()
        return _document({**row, "embedded": 0}, collection["name"])

    async def _drop_passages(self, collection_id: str, document_id: str) -> None:
        """The passages of a document whose row was never written (and any vector a sweep
        gave them meanwhile)."""
        async with self._store.writing() as session:
            await _drop_passages(session, collection_id, document_id)

    async def drop_unfinished(self) -> int:
        """Passages whose document's row was never written (a process that stopped in the
        middle of an ingest); the number dropped. Only where no other process may be adding
        a document right now (one process on SQLite): its passages are not yet finished
        either."""
        return await self._store.detach(self._drop_unfinished())

    async def _drop_unfinished(self, only: set[str] | None = None) -> int:
        async with self._store.writing() as session:
            left = (
                await session.execute(
                    select(chunks_table.c.collection_id, chunks_table.c.document_id)
                    .where(~chunks_table.c.document_id.in_(select(documents_table.c.document_id)))
                    .distinct()
                )
            ).all()
            dropped = [(c, d) for c, d in left if only is None or d in only]
            for collection_id, document_id in dropped:
                await _drop_passages(session, collection_id, document_id)
        return len(dropped)

    async def unfinished(self) -> set[str]:
        """The documents whose passages are stored and whose row is not (yet)."""
        async with self._store.reading() as session:
            found = await session.execute(
                select(chunks_table.c.document_id)
                .where(~chunks_table.c.document_id.in_(select(documents_table.c.document_id)))
                .distinct()
            )
            return {str(document_id) for (document_id,) in found.all()}

    async def keep_tidy(self, every_s: float = TIDY_EVERY_S) -> None:
        """Forever: drop the passages of a document still unfinished a whole ``every_s``
        after it was first seen so (a process that stopped in the middle of an ingest, with
        other processes on the database: pass EJ found 3,500 such passages kept, and
        embedded, across restarts). An ingest in progress finishes far sooner."""
        seen: set[str] = set()
        while True:
            await asyncio.sleep(every_s)
            try:
                seen = await self.tidy(seen)
            except StoreUnavailable as exc:
                log.warning("unfinished documents not looked at", reason=str(exc))

    async def tidy(self, seen: set[str]) -> set[str]:
        """Drop the passages of the documents in ``seen`` that are still unfinished; the
        documents unfinished now and not dropped (to be given again next time)."""
        left = await self.unfinished()
        stale = seen & left
        if stale and (dropped := await self._store.detach(self._drop_unfinished(stale))):
            log.warning("passages of unfinished documents dropped", documents=dropped)
        return left - stale

    async def documents(self, collection: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._store.detach(self._documents(collection))

    async def _documents(self, collection: dict[str, Any]) -> list[dict[str, Any]]:
        statement = (
            self._with_embedded()
            .where(documents_table.c.collection_id == collection["collection_id"])
            .order_by(documents_table.c.created_at, documents_table.c.document_id)
        )
        async with self._store.reading() as session:
            rows = (await session.execute(statement)).mappings().all()
        return [_document(row, collection["name"]) for row in rows]

    async def document(self, collection: dict[str, Any], document_id: str) -> dict[str, Any] | None:
        return await self._store.detach(self._document(collection, document_id))

    async def _document(
        self, collection: dict[str, Any], document_id: str
    ) -> dict[str, Any] | None:
        statement = self._with_embedded().where(
            documents_table.c.collection_id == collection["collection_id"],
            documents_table.c.document_id == document_id,
        )
        async with self._store.reading() as session:
            row = (await session.execute(statement)).mappings().first()
        return _document(row, collection["name"]) if row is not None else None

    def _with_embedded(self) -> Select[Any]:
        """Documents with ``embedded``: how many of their passages have a vector of the
        configured model (0 without one)."""
        if self.embedder is None:
            return select(documents_table, literal(0).label("embedded"))
        embedded = (
            select(func.count())
            .select_from(
                vectors_table.join(
                    chunks_table, chunks_table.c.chunk_id == vectors_table.c.chunk_id
                )
            )
            .where(
                chunks_table.c.document_id == documents_table.c.document_id,
                vectors_table.c.model == self.embedder.model,
            )
            .scalar_subquery()
        )
        return select(documents_table, embedded.label("embedded"))

    async def delete_document(self, collection: dict[str, Any], document_id: str) -> bool:
        return await self._store.detach(self._delete_document(collection, document_id))

    async def _delete_document(self, collection: dict[str, Any], document_id: str) -> bool:
        async with self._store.writing() as session:
            gone = await session.execute(
                delete(documents_table).where(
                    documents_table.c.collection_id == collection["collection_id"],
                    documents_table.c.document_id == document_id,
                )
            )
            if not gone.rowcount:  # type: ignore[attr-defined]
                return False
            await _vectors_changed(session, {collection["collection_id"]})
            await session.execute(
                delete(vectors_table).where(
                    vectors_table.c.chunk_id.in_(
                        select(chunks_table.c.chunk_id).where(
                            chunks_table.c.document_id == document_id
                        )
                    )
                )
            )
            await session.execute(
                delete(chunks_table).where(chunks_table.c.document_id == document_id)
            )
        return True

    # -- search ---------------------------------------------------------------------------------

    async def search(self, collection_ids: Sequence[str], query: str, k: int) -> list[Passage]:
        """The ``k`` best passages (``tools.retrieve.tool.PassageIndex``): BM25, fused with the
        vector ranking when an embeddings model is configured and answers."""
        if not collection_ids or k < 1:
            return []
        if self.embedder is None:
            return await self.lexical(collection_ids, query, k)
        pool = max(k, FUSION_POOL)
        lexical = await self.lexical(collection_ids, query, pool)
        try:
            semantic = await self.semantic(collection_ids, query, pool)
        except EmbeddingsUnavailable as exc:
            log.warning("retrieve ranks by BM25 alone: no query vector", reason=str(exc))
            return lexical[:k]
        return fuse([lexical, semantic], k)

    async def lexical(self, collection_ids: Sequence[str], query: str, k: int) -> list[Passage]:
        """The ``k`` best passages by BM25 (``ts_rank_cd`` on Postgres)."""
        terms = query_terms(query)
        if not terms or not collection_ids:
            return []
        try:
            return await self._store.detach(self._lexical(list(collection_ids), terms, k))
        except StoreUnavailable as exc:
            raise ToolUnavailable(f"retrieve is unavailable right now ({exc})") from exc

    async def semantic(self, collection_ids: Sequence[str], query: str, k: int) -> list[Passage]:
        """The ``k`` embedded passages nearest ``query`` (cosine). Raises
        ``EmbeddingsUnavailable`` when there is no model or it does not answer."""
        if self.embedder is None:
            raise EmbeddingsUnavailable("no embeddings model is configured (EMBEDDINGS_BASE_URL)")
        if not collection_ids or not query.strip():
            return []
        vector = await self.embedder.embed_query(query)
        try:
            return await self._store.detach(self._nearest(list(collection_ids), vector, k))
        except StoreUnavailable as exc:
            raise ToolUnavailable(f"retrieve is unavailable right now ({exc})") from exc

    async def _lexical(self, collection_ids: list[str], terms: list[str], k: int) -> list[Passage]:
        if self._store.sqlite:
            statement = text(
                f"{_PASSAGE_COLUMNS}, -bm25(chunks_fts, 0.0, 2.0, 1.0) AS score "
                "FROM chunks_fts JOIN chunks c ON c.chunk_id = chunks_fts.rowid "
                f"{_PASSAGE_JOINS} "
                "WHERE chunks_fts MATCH :query AND c.collection_id IN :ids "
                "ORDER BY bm25(chunks_fts, 0.0, 2.0, 1.0) LIMIT :k"
            )
            # Narrowed to the collections in the index itself (ids are hex: safe to quote);
            # the words are matched in the heading and the text only.
            if not all(_HEX_ID.fullmatch(collection_id) for collection_id in collection_ids):
                raise ValueError("collection ids are the store's own (hex), never a caller's")
            within = " OR ".join(f'"{collection_id}"' for collection_id in collection_ids)
            words = " OR ".join(f'"{term}"' for term in terms)
            query = f"collection_id : ({within}) AND {{heading text}} : ({words})"
        else:
            statement = text(
                f"{_PASSAGE_COLUMNS}, ts_rank_cd(c.tsv, q) AS score "
                "FROM chunks c CROSS JOIN to_tsquery('english', :query) q "
                f"{_PASSAGE_JOINS} "
                "WHERE c.tsv @@ q AND c.collection_id IN :ids "
                "ORDER BY score DESC, c.chunk_id LIMIT :k"
            )
            query = " | ".join(terms)
        statement = statement.bindparams(bindparam("ids", expanding=True))
        async with self._store.reading() as session:
            rows = (
                await session.execute(statement, {"query": query, "ids": collection_ids, "k": k})
            ).all()
        return [_passage(row) for row in rows]

    async def _nearest(self, collection_ids: list[str], query: Vector, k: int) -> list[Passage]:
        assert self.embedder is not None
        model = self.embedder.model
        scored: list[tuple[float, int]] = []
        async with self._store.reading() as session:
            versions = await session.execute(
                select(
                    collections_table.c.collection_id, collections_table.c.vectors_version
                ).where(collections_table.c.collection_id.in_(collection_ids))
            )
            for collection_id, version in versions.all():
                vectors = self._vectors.get((collection_id, model))
                if vectors is None or (vectors.version, vectors.dimensions) != (
                    version,
                    len(query),
                ):
                    # The version was read first: a write after it makes the next query
                    # read again, never keeps a stale matrix under a newer version.
                    vectors = await self._read_vectors(session, collection_id, version, len(query))
                    if vectors.nbytes <= self._vectors.maxsize:
                        self._vectors[(collection_id, model)] = vectors
                if not len(vectors.chunk_ids):
                    continue
                scores = vectors.matrix @ query
                best = np.argsort(-scores, kind="stable")[:k]
                scored += [(float(scores[i]), int(vectors.chunk_ids[i])) for i in best]
            scored = sorted(scored, key=lambda pair: (-pair[0], pair[1]))[:k]
            found = {
                passage.chunk_id: passage
                for passage in await self._passages(session, [chunk_id for _, chunk_id in scored])
            }
        return [
            dataclasses.replace(found[chunk_id], score=score)
            for score, chunk_id in scored
            if chunk_id in found  # deleted since its vector was read
        ]

    async def _read_vectors(
        self, session: AsyncSession, collection_id: str, version: int, dimensions: int
    ) -> _Vectors:
        assert self.embedder is not None
        which = (
            vectors_table.c.collection_id == collection_id,
            vectors_table.c.model == self.embedder.model,
        )
        size = dimensions * 4
        count = await session.scalar(select(func.count()).select_from(vectors_table).where(*which))
        if (count or 0) * (size + 8) > VECTOR_CACHE_BYTES:
            # Bounded memory: such a collection ranks by BM25 alone (remembered until its
            # vectors change, so this is counted once per version).
            log.warning(
                "retrieve ranks a collection by BM25 alone: too many vectors to hold",
                collection_id=collection_id,
                vectors=count,
                limit_bytes=VECTOR_CACHE_BYTES,
            )
            return _Vectors(
                version, dimensions, np.zeros(0, np.int64), unpack(b"").reshape(0, dimensions)
            )
        statement = select(vectors_table.c.chunk_id, vectors_table.c.vector).where(*which)
        # A vector of another size (the model's name kept, its output changed) is skipped
        # until the sweep replaces it.
        rows = [row for row in (await session.execute(statement)).all() if len(row[1]) == size]
        matrix = unpack(b"".join(row[1] for row in rows)).reshape(len(rows), dimensions)
        chunk_ids = np.array([row[0] for row in rows], dtype=np.int64)
        return _Vectors(version, dimensions, chunk_ids, matrix)

    async def _passages(self, session: AsyncSession, chunk_ids: list[int]) -> list[Passage]:
        statement = text(
            f"{_PASSAGE_COLUMNS}, 0.0 AS score FROM chunks c {_PASSAGE_JOINS} "
            "WHERE c.chunk_id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        rows = (await session.execute(statement, {"ids": chunk_ids})).all()
        return [_passage(row) for row in rows]

    # -- embeddings ---------------------------------------------------------------------------

    async def embed_pending(self, *, start_at: int | None = None) -> int:
        """Embed every passage without a vector of the configured model, ``embedder.batch``
        at a time, each batch stored as it comes; the number embedded (0 without a model).
        Raises ``EmbeddingsUnavailable`` or ``StoreUnavailable``: what was stored stays.

        It goes in passage-id order from ``start_at`` (default: a random passage) to the end,
        then from the start: each worker process runs a sweep, and sweeps that begin at
        different places share a big backlog instead of embedding the same passages twice.
        A sweep that finds a batch stored by another meanwhile stops there (a passage
        embedded twice is only replaced), so two sweeps never go on in step."""
        if self.embedder is None:
            return 0
        embedder = self.embedder
        if embedder.dimensions is None:
            await embedder.embed_query(DIMENSIONS_PROBE)  # the server's size, as of now
        assert embedder.dimensions is not None
        size = embedder.dimensions * 4
        total = await self._store.detach(self._count_pending(embedder.model, size))
        if not total:
            return 0
        if start_at is None:
            start_at = await self._store.detach(self._random_passage())
        done, said = 0, time.monotonic()
        after, wrapped = start_at - 1, False
        # Bounded: the passages pending now, one more batch for those added meanwhile (the
        # next sweep takes the rest) and the turn back to the first passage.
        for _ in range(total // embedder.batch + 3):
            batch = await self._store.detach(
                self._pending(embedder.model, embedder.batch, after=after, size=size)
            )
            if not batch:
                if wrapped:
                    break
                after, wrapped = -1, True
                continue
            after = batch[-1][0]
            vectors = await embedder.embed([_embedded_text(row[2], row[3]) for row in batch])
            written = await self._store.detach(self._store_vectors(embedder.model, batch, vectors))
            done += len(batch)
            if written < len(batch):
                # Another sweep embedded these while this one did: it is working here, and
                # following it batch for batch would embed everything twice. It goes on to
                # the end and round; what either leaves, the next sweep takes.
                log.info("embedding sweep met another", model=embedder.model, done=done)
                break
            if time.monotonic() - said >= EMBED_PROGRESS_S:
                log.info("embedding passages", model=embedder.model, done=done, pending=total)
                said = time.monotonic()
        if done:
            log.info("passages embedded", model=embedder.model, embedded=done)
        return done

    async def keep_embedding(
        self, *, poll_s: float = EMBED_POLL_S, first_backoff_s: float = 5.0
    ) -> None:
        """Until cancelled: ``embed_pending`` when a document is added and every ``poll_s``
        (other processes' documents, a model change), backing off while it fails."""
        backoff = first_backoff_s
        while True:
            self._wake.clear()
            try:
                await self.embed_pending()
            except Exception as exc:
                if isinstance(exc, EmbeddingsUnavailable | StoreUnavailable):
                    log.warning("embedding passages failed", reason=str(exc), retry_in_s=backoff)
                else:  # a bug of ours: its traceback in the log, and the sweep goes on
                    log.exception("embedding passages failed", retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, EMBED_BACKOFF_MAX_S)
                continue
            backoff = first_backoff_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_s)

    async def _count_pending(self, model: str, size: int | None = None) -> int:
        async with self._store.reading() as session:
            count = await session.scalar(
                select(func.count()).select_from(_without_vector(model)).where(_lacks(size))
            )
        return count or 0

    async def _random_passage(self) -> int:
        async with self._store.reading() as session:
            low, high = (
                await session.execute(
                    select(func.min(chunks_table.c.chunk_id), func.max(chunks_table.c.chunk_id))
                )
            ).one()
        return random.randint(low, high) if low is not None and high is not None else 0

    async def _pending(
        self, model: str, limit: int, *, after: int = -1, size: int | None = None
    ) -> list[Any]:
        """Up to ``limit`` passages after id ``after`` without a vector of ``model`` (of
        ``size`` bytes, when given)."""
        statement = (
            select(
                chunks_table.c.chunk_id,
                chunks_table.c.collection_id,
                chunks_table.c.heading,
                chunks_table.c.text,
            )
            .select_from(_without_vector(model))
            .where(_lacks(size), chunks_table.c.chunk_id > after)
            .order_by(chunks_table.c.chunk_id)
            .limit(limit)
        )
        async with self._store.reading() as session:
            return list((await session.execute(statement)).all())

    async def _store_vectors(self, model: str, batch: list[Any], vectors: list[Vector]) -> int:
        """Store a batch's vectors; how many were new (the others another sweep stored
        while this one embedded them)."""
        rows = [
            {"chunk_id": row[0], "collection_id": row[1], "model": model, "vector": pack(vector)}
            for row, vector in zip(batch, vectors, strict=True)
        ]
        upsert = (sqlite_insert if self._store.sqlite else postgres_insert)(vectors_table)
        statement = upsert.on_conflict_do_update(
            index_elements=[vectors_table.c.chunk_id],
            set_={"model": upsert.excluded.model, "vector": upsert.excluded.vector},
            # A vector of the same model and size was stored by another sweep meanwhile.
            where=or_(
                vectors_table.c.model != upsert.excluded.model,
                func.length(vectors_table.c.vector) != func.length(upsert.excluded.vector),
            ),
        ).returning(vectors_table.c.chunk_id)
        ids = [row["chunk_id"] for row in rows]
        async with self._store.writing() as session:
            written = len((await session.execute(statement, rows)).all())
            await _vectors_changed(session, {row["collection_id"] for row in rows})
            # A passage deleted while it was being embedded leaves no vector behind.
            await session.execute(
                delete(vectors_table).where(
                    vectors_table.c.chunk_id.in_(ids),
                    vectors_table.c.chunk_id.not_in(
                        select(chunks_table.c.chunk_id).where(chunks_table.c.chunk_id.in_(ids))
                    ),
                )
            )
        return written


@dataclass(frozen=True, slots=True)
class _Vectors:
    """One collection's vectors of one model, as read at ``version`` of the collection."""

    version: int
    dimensions: int
    chunk_ids: npt.NDArray[np.int64]
    matrix: Vector  # one row per passage

    @property
    def nbytes(self) -> int:
        return int(self.chunk_ids.nbytes + self.matrix.nbytes) + 64


async def _vectors_changed(session: AsyncSession, collection_ids: set[str]) -> None:
    """Bump the collections' ``vectors_version``: every process's cached matrix of them is
    read again by its next query (passage ids can be reused: a count or a maximum is no
    version)."""
    await session.execute(
        update(collections_table)
        .where(collections_table.c.collection_id.in_(sorted(collection_ids)))
        .values(vectors_version=collections_table.c.vectors_version + 1)
    )


def fuse(rankings: Sequence[Sequence[Passage]], k: int) -> list[Passage]:
    """Reciprocal-rank fusion: each passage scores ``sum(1 / (RRF_K + rank))`` over the
    rankings it is in; the ``k`` best, ties by passage id."""
    scores: dict[int, float] = {}
    seen: dict[int, Passage] = {}
    for ranking in rankings:
        for rank, passage in enumerate(ranking, start=1):
            scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            seen.setdefault(passage.chunk_id, passage)
    best = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))[:k]
    return [dataclasses.replace(seen[chunk_id], score=scores[chunk_id]) for chunk_id in best]


_PASSAGE_COLUMNS = (
    'SELECT c.chunk_id, c.document_id, c.page, c.start, c."end", c.heading, c.text, d.source, '
    "k.name"
)
_PASSAGE_JOINS = (
    "JOIN documents d ON d.document_id = c.document_id "
    "JOIN collections k ON k.collection_id = c.collection_id"
)


async def _check_room(session: AsyncSession, collection: dict[str, Any], sha256: str) -> None:
    """Raises ``LookupError`` (the collection is gone), ``TooMany`` or ``DuplicateDocument``."""
    collection_id = collection["collection_id"]
    exists = await session.scalar(
        select(collections_table.c.collection_id).where(
            collections_table.c.collection_id == collection_id
        )
    )
    if exists is None:  # deleted while this document was being parsed
        raise LookupError(collection["name"])
    count = await session.scalar(
        select(func.count()).where(documents_table.c.collection_id == collection_id)
    )
    if (count or 0) >= MAX_DOCUMENTS_PER_COLLECTION:
        raise TooMany(f"the collection holds {MAX_DOCUMENTS_PER_COLLECTION} documents, the limit")
    # The same content twice would show its passages twice in every answer.
    same = (
        (
            await session.execute(
                select(documents_table.c.document_id, documents_table.c.source).where(
                    documents_table.c.collection_id == collection_id,
                    documents_table.c.sha256 == sha256,
                )
            )
        )
        .mappings()
        .first()
    )
    if same is not None:
        raise DuplicateDocument(dict(same))


async def _drop_passages(session: AsyncSession, collection_id: str, document_id: str) -> None:
    vectors = await session.execute(
        delete(vectors_table).where(
            vectors_table.c.chunk_id.in_(
                select(chunks_table.c.chunk_id).where(chunks_table.c.document_id == document_id)
            )
        )
    )
    if vectors.rowcount:  # type: ignore[attr-defined]
        await _vectors_changed(session, {collection_id})
    await session.execute(delete(chunks_table).where(chunks_table.c.document_id == document_id))


def _passage(row: Any) -> Passage:
    return Passage(
        chunk_id=row[0],
        document_id=row[1],
        page=row[2],
        start=row[3],
        end=row[4],
        heading=row[5],
        text=row[6],
        source=row[7],
        collection=row[8],
        score=float(row[9]),
    )


def _without_vector(model: str) -> Any:
    """Passages outer-joined with their vector of ``model`` (NULL where they have none)."""
    return chunks_table.outerjoin(
        vectors_table,
        and_(vectors_table.c.chunk_id == chunks_table.c.chunk_id, vectors_table.c.model == model),
    )


def _lacks(size: int | None) -> Any:
    """Over ``_without_vector``: no vector, or (``size`` given) one of another size, which a
    model that changed its output under the same name left."""
    missing = vectors_table.c.chunk_id.is_(None)
    return missing if size is None else or_(missing, func.length(vectors_table.c.vector) != size)


def _embedded_text(heading: str | None, body: str) -> str:
    """What is embedded for a passage: its heading trail, then its text."""
    return f"{heading}\n{body}" if heading else body


def _collection(row: Any) -> dict[str, Any]:
    return {
        "collection_id": row["collection_id"],
        "name": row["name"],
        "description": row["description"],
        "created_at": _iso(row["created_at"]),
    }


def _document(row: Any, collection: str) -> dict[str, Any]:
    return {
        "document_id": row["document_id"],
        "collection": collection,
        "source": row["source"],
        "media_type": row["media_type"],
        "bytes": row["bytes"],
        "pages": row["pages"],
        "chunks": row["chunks"],
        "embedded": row["embedded"],
        "sha256": row["sha256"],
        "created_at": _iso(row["created_at"]),
    }
