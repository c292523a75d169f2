"""The run store: every run that started is kept, whatever its outcome.

SQLAlchemy async; SQLite (aiosqlite) by default, Postgres (asyncpg) when ``DATABASE_URL`` says
so and several replicas share it. A run is inserted when it starts (status ``running``) and
updated when it ends, so a crash or a client that hangs up still leaves a record.

Every database failure (locked, read-only, disk full, server down) leaves this module as
``StoreUnavailable``, whose message says why in a few words: the service answers 503 when a
run cannot be recorded or read, and tells the client when a run's end could not be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Float, String, Text, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class _Base(DeclarativeBase):
    pass


class RunRecord(_Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    mode: Mapped[str] = mapped_column(String(16))
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    usage: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "mode": self.mode,
            "question": self.question,
            "answer": self.answer,
            "error": self.error,
            "steps": self.steps,
            "usage": self.usage,
            "details": self.details,
            "duration_ms": self.duration_ms,
            "created_at": self.created_at.isoformat(),
        }


class StoreUnavailable(Exception):
    """The run store could not be read or written; the message says why (HTTP 503)."""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc  # the driver's own error, when there is one
        text = str(cause).strip()
        reason = text.splitlines()[0][:200] if text else type(cause).__name__
        raise StoreUnavailable(f"the run store is unavailable ({reason})") from exc


class RunStore:
    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        self._engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        # SQLite takes one writer at a time and lets a waiting one give up ("database is
        # locked", found with 8 runs at a time on a loaded machine): this process's writes
        # take turns here instead. Postgres has row locks and needs none.
        self._writing = asyncio.Lock() if url.get_backend_name() == "sqlite" else None

    async def start(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(_Base.metadata.create_all)

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def check(self) -> None:
        with _translated():
            async with self._sessions() as session:
                await session.execute(select(1))

    async def create(self, run_id: str, mode: str, question: str) -> None:
        record = RunRecord(
            run_id=run_id,
            created_at=dt.datetime.now(dt.UTC),
            mode=mode,
            question=question,
            status="running",
            steps=[],
            usage={},
            details={},
            duration_ms=0.0,
        )
        async with self._write_turn(), self._sessions() as session:
            with _translated():
                async with session.begin():
                    session.add(record)

    async def finish(self, run_id: str, **fields: Any) -> None:
        # One UPDATE, not a read then a write: a transaction that reads first must upgrade
        # its lock to write, which is where SQLite gives up on a busy database.
        statement = update(RunRecord).where(RunRecord.run_id == run_id).values(**fields)
        async with self._write_turn(), self._sessions() as session:
            with _translated():
                async with session.begin():
                    result = await session.execute(statement)
            if getattr(result, "rowcount", 1) == 0:
                raise StoreUnavailable(f"the run store has no record of run {run_id}")

    def _write_turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._writing if self._writing is not None else contextlib.nullcontext()

    async def get(self, run_id: str) -> dict[str, Any] | None:
        with _translated():
            async with self._sessions() as session:
                record = await session.get(RunRecord, run_id)
                return record.as_dict() if record is not None else None
