"""Document collections and their full-text index, in the run store's database.

A collection belongs to the API key that made it (its ``owner``), like a run: another key
gets 404. A document is stored with all its passages in one transaction, so a failed
ingestion leaves nothing half-indexed; deleting a collection deletes its documents and
passages in one transaction too.

Ranking is the database's own full-text search: SQLite's FTS5 with BM25 (the index is kept by
triggers, ``migrations/versions/0004``), Postgres's ``tsvector`` with ``ts_rank_cd``. A query is
never handed to either query language as written: it is cut into words, which are quoted
(FTS5) or joined as plain lexemes (Postgres), and any of them may match (OR), ranked by how
well.

    StoreUnavailable (service.store)   the database cannot be read or written
    CollectionExists                   409: the owner has a collection of that name
    TooMany                            409: a per-owner or per-collection bound is reached
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from service.store import RunStore, StoreUnavailable, metadata
from tools.base import ToolUnavailable
from tools.retrieve.chunk import Chunk, chunk
from tools.retrieve.extract import MEDIA_TYPES, Kind, Section, detect, sections
from tools.retrieve.tool import Passage

MAX_COLLECTIONS_PER_OWNER = 100
MAX_DOCUMENTS_PER_COLLECTION = 10_000
_MAX_TERMS = 32
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


class CollectionExists(Exception):
    """The owner already has a collection with that name."""


class TooMany(Exception):
    """A bound on collections or documents is reached; the message says which."""


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


async def prepare_document(
    data: bytes,
    source: str,
    declared: str | None = None,
    *,
    max_pages: int,
    timeout_s: float = 60.0,
) -> NewDocument:
    """A file as it will be stored: its kind told by its content, its text read (HTML and PDF
    in the confined child), cut into passages (on a thread). Raises ``IngestError``."""
    kind = detect(data, source, declared)
    found = await sections(data, kind, max_pages=max_pages, timeout_s=timeout_s)
    passages = await asyncio.to_thread(chunk, found, kind)
    return NewDocument(
        source=source,
        media_type=MEDIA_TYPES[kind],
        size=len(data),
        pages=len(found) if kind == "pdf" else None,
        sha256=hashlib.sha256(data).hexdigest(),
        chunks=passages,
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

    def __init__(self, store: RunStore) -> None:
        self._store = store

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
        return {**_collection(row), "documents": 0, "chunks": 0}

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
        statement = (
            select(collections_table, documents.c.documents, documents.c.chunks)
            .outerjoin(documents, documents.c.collection_id == collections_table.c.collection_id)
            .where(collections_table.c.owner == owner)
            .order_by(collections_table.c.name)
        )
        if names is not None:
            statement = statement.where(collections_table.c.name.in_(list(names)))
        async with self._store.reading() as session:
            rows = (await session.execute(statement)).mappings().all()
        return [
            {**_collection(row), "documents": row["documents"] or 0, "chunks": row["chunks"] or 0}
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

    async def add_document(self, collection: dict[str, Any], new: NewDocument) -> dict[str, Any]:
        """Store a document and all its passages in one transaction."""
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
        async with self._store.writing() as session:
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
                raise TooMany(
                    f"the collection holds {MAX_DOCUMENTS_PER_COLLECTION} documents, the limit"
                )
            await session.execute(insert(documents_table).values(**row))
            for start in range(0, len(passages), 1000):
                await session.execute(insert(chunks_table), passages[start : start + 1000])
        return _document(row, collection["name"])

    async def documents(self, collection: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._store.detach(self._documents(collection))

    async def _documents(self, collection: dict[str, Any]) -> list[dict[str, Any]]:
        statement = (
            select(documents_table)
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
        statement = select(documents_table).where(
            documents_table.c.collection_id == collection["collection_id"],
            documents_table.c.document_id == document_id,
        )
        async with self._store.reading() as session:
            row = (await session.execute(statement)).mappings().first()
        return _document(row, collection["name"]) if row is not None else None

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
            await session.execute(
                delete(chunks_table).where(chunks_table.c.document_id == document_id)
            )
        return True

    # -- search ---------------------------------------------------------------------------------

    async def search(self, collection_ids: Sequence[str], query: str, k: int) -> list[Passage]:
        """The ``k`` best passages (``tools.retrieve.tool.PassageIndex``)."""
        terms = query_terms(query)
        if not terms or not collection_ids:
            return []
        try:
            return await self._store.detach(self._search(list(collection_ids), terms, k))
        except StoreUnavailable as exc:
            raise ToolUnavailable(f"retrieve is unavailable right now ({exc})") from exc

    async def _search(self, collection_ids: list[str], terms: list[str], k: int) -> list[Passage]:
        if self._store.sqlite:
            statement = text(
                'SELECT c.chunk_id, c.document_id, c.page, c.start, c."end", c.heading, '
                "c.text, d.source, k.name, -bm25(chunks_fts, 0.0, 2.0, 1.0) AS score "
                "FROM chunks_fts JOIN chunks c ON c.chunk_id = chunks_fts.rowid "
                "JOIN documents d ON d.document_id = c.document_id "
                "JOIN collections k ON k.collection_id = c.collection_id "
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
                'SELECT c.chunk_id, c.document_id, c.page, c.start, c."end", c.heading, '
                "c.text, d.source, k.name, ts_rank_cd(c.tsv, q) AS score "
                "FROM chunks c CROSS JOIN to_tsquery('english', :query) q "
                "JOIN documents d ON d.document_id = c.document_id "
                "JOIN collections k ON k.collection_id = c.collection_id "
                "WHERE c.tsv @@ q AND c.collection_id IN :ids "
                "ORDER BY score DESC, c.chunk_id LIMIT :k"
            )
            query = " | ".join(terms)
        statement = statement.bindparams(bindparam("ids", expanding=True))
        async with self._store.reading() as session:
            rows = (
                await session.execute(statement, {"query": query, "ids": collection_ids, "k": k})
            ).all()
        return [
            Passage(
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
            for row in rows
        ]


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
        "sha256": row["sha256"],
        "created_at": _iso(row["created_at"]),
    }
