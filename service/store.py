"""The run store: every run that started is kept, whatever its outcome, with its event log,
its thread and its feedback.

SQLAlchemy async; SQLite (aiosqlite) by default, Postgres (asyncpg) when ``DATABASE_URL`` says
so. The schema is Alembic's (``service/migrations``), applied at start-up (``migrate``): a
database made before migrations existed is recognised and brought up to date without loss.

A run is inserted when it is accepted (``queued`` or ``running``); each event it emits is
appended to ``run_events`` together with the run's steps and usage so far, in one
transaction, so a run that ends by timeout, cancel or a killed process keeps its partial
steps and true usage; its end is one UPDATE. Runs, threads and feedback belong to an
``owner`` (a hash of the API key that made them, never the key; ``""`` without keys), and
every read is scoped to it.

Every database failure (locked, read-only, disk full, server down) leaves this module as
``StoreUnavailable``, whose message says why in a few words: the service answers 503 when a
run cannot be recorded or read, and tells the client when a run's end could not be stored.

A caller that is cancelled (a client gone from a stream, a deadline) never cancels a database
operation: each runs in a task of its own that the caller only waits for (``_detached``).
Cancelled half-way, a session cannot hand its connection back (anyio's cancellation, which
Starlette and sse-starlette use, cancels the clean-up too), so the connection was left to the
garbage collector and a write was lost; now the write ends and the connection goes back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    TypeDecorator,
    and_,
    delete,
    event,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in MIGRATIONS (a test holds the two together). A database already at it
# starts without importing Alembic, which would cost a tenth of the embedded model's cold start.
SCHEMA_HEAD = "0006"
_Row = TypeVar("_Row")
_P = ParamSpec("_P")
_T = TypeVar("_T")
ACTIVE = ("queued", "running")  # a run in one of these has not ended
MAX_PAGE = 100
# Threads one owner may hold at once (each up to ~9 KB of metadata): past it, a new one is a
# 409 until some are deleted. With RATE_LIMIT, a key grows the store by threads slowly, and
# only so far (red-team pass CV: 3,000 threads in a minute, 2 GB an hour).
MAX_THREADS_PER_OWNER = 10_000
SQLITE_BUSY_TIMEOUT_S = 10.0
_MIGRATION_LOCK = 0x72656163  # a Postgres advisory lock held while one process migrates
_THREADS_LOCK = 0x74687264  # with the owner's hash: held while one of the owner's threads is made


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: Any) -> Any:
    """``value`` with every string (in JSON data too, keys included) as any database stores
    it: NUL, which Postgres refuses in text and JSON, and lone surrogates, which no UTF-8
    encoder takes, become U+FFFD. A program's answer or a model's reply may hold either, and
    the run must be stored all the same."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(item) for item in value]
    return value


class StorableText(TypeDecorator[str]):
    """Text, written through :func:`storable`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else storable(value)


class StorableJSON(TypeDecorator[Any]):
    """JSON, written through :func:`storable`."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else storable(value)


class _Base(DeclarativeBase):
    pass


metadata = _Base.metadata


class RunRecord(_Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    question: Mapped[str] = mapped_column(StorableText)
    status: Mapped[str] = mapped_column(String(16), index=True)
    answer: Mapped[str | None] = mapped_column(StorableText, nullable=True)
    error: Mapped[str | None] = mapped_column(StorableText, nullable=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(StorableJSON, default=list)
    usage: Mapped[dict[str, int]] = mapped_column(StorableJSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(StorableJSON, default=dict)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    owner: Mapped[str] = mapped_column(String(64), default="")
    thread_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Set by a process asked to cancel a run that another process runs (RunManager).
    cancel_requested: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

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
            "created_at": _iso(self.created_at),
            "thread_id": self.thread_id,
        }


class ThreadRecord(_Base):
    __tablename__ = "threads"

    thread_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", StorableJSON, default=dict)
    summary: Mapped[str | None] = mapped_column(StorableText, nullable=True)
    summarized: Mapped[int] = mapped_column(Integer, default=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "created_at": _iso(self.created_at),
            "metadata": self.meta,
        }


class EventRecord(_Base):
    __tablename__ = "run_events"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(StorableJSON)


class FeedbackRecord(_Base):
    __tablename__ = "feedback"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str | None] = mapped_column(StorableText, nullable=True)
    correction: Mapped[str | None] = mapped_column(StorableText, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "score": self.score,
            "rating": self.rating,
            "comment": self.comment,
            "correction": self.correction,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class ThreadMemory:
    summary: str | None
    summarized: int


class StoreUnavailable(Exception):
    """The run store could not be read or written; the message says why (HTTP 503)."""


class ThreadActive(Exception):
    """A thread with a run that has not ended cannot be deleted (HTTP 409)."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__(f"thread {thread_id} has a run in progress ({run_id}): cancel it")
        self.run_id = run_id


class ThreadBusy(Exception):
    """The thread already has a run in progress (HTTP 409)."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__(f"thread {thread_id} already has a run in progress: {run_id}")
        self.run_id = run_id


class RunGone(LookupError):
    """The run was deleted (its thread, or by retention) before feedback on it was stored
    (HTTP 404)."""


class ThreadGone(LookupError):
    """A run's thread was deleted before the run could be recorded (HTTP 404)."""


class TooManyThreads(Exception):
    """The owner holds ``MAX_THREADS_PER_OWNER`` threads already (HTTP 409)."""


class BadCursor(ValueError):
    """A pagination cursor this store did not hand out."""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc  # the driver's own error, when there is one
        text = str(cause).strip()
        reason = text.splitlines()[0][:200] if text else type(cause).__name__
        raise StoreUnavailable(f"the run store is unavailable ({reason})") from exc


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    # SQLite hands back naive datetimes for what was written as UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()


def migrate(connection: Connection) -> None:
    """Bring the schema to the newest revision. A database that the service made before
    migrations existed (a ``runs`` table, no ``alembic_version``) is first marked as the
    revision that describes it, so its runs are kept."""
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables:
        current = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        if [tuple(row) for row in current] == [(SCHEMA_HEAD,)]:
            return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    if "runs" in tables and "alembic_version" not in tables:
        command.stamp(config, "0001")
    command.upgrade(config, "head")


def encode_cursor(moment: dt.datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{_iso(moment)}|{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, key = text.split("|", 1)
        return dt.datetime.fromisoformat(moment), key
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this server handed out") from exc


def _detached(
    operation: Callable[Concatenate[RunStore, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[RunStore, _P], Awaitable[_T]]:
    """Run ``operation`` in a task of its own: cancelling the caller stops the wait, not the
    operation, which ends (committing or rolling back) and returns its connection. The store
    keeps the task until it ends and ``aclose`` waits for it."""

    @functools.wraps(operation)
    async def detached(store: RunStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await store.detach(operation(store, *args, **kwargs))

    detached.__detached__ = True  # type: ignore[attr-defined]
    return detached


class RunStore:
    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        self.sqlite = url.get_backend_name() == "sqlite"
        # SQLite: a writer in another process (WORKERS) is waited for, not failed at once
        # with "database is locked"; a URL's own ?timeout= wins.
        waits = self.sqlite and "timeout" not in url.query
        options = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if waits else {}
        # A server's connection may have died while pooled (pinged); a SQLite file's cannot,
        # and the ping cost each use a round trip to aiosqlite's thread (read CPU 2.8 -> 1.5 ms).
        ping = not self.sqlite
        self._engine: AsyncEngine = create_async_engine(url, pool_pre_ping=ping, **options)
        if self.sqlite:
            _begin_writes_at_once(self._engine)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        # SQLite takes one writer at a time and lets a waiting one give up ("database is
        # locked", found with 8 runs at a time on a loaded machine): this process's writes
        # take turns here instead. Postgres has row locks and needs none.
        self._writing = asyncio.Lock() if self.sqlite else None
        self._operations: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        """Apply the migrations, then mark the runs a dead process left unfinished."""
        with _translated():
            writing = self._engine.execution_options(**{_IMMEDIATE: True})
            async with writing.begin() as conn:
                if not self.sqlite:  # replicas starting together take turns (SQLite locks)
                    await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                await conn.run_sync(migrate)

    async def aclose(self) -> None:
        """Wait for the operations whose callers went away, then close every connection."""
        if self._operations:
            await asyncio.wait(list(self._operations))
        await self._engine.dispose()

    async def detach(self, operation: Coroutine[Any, Any, _T]) -> _T:
        """Run ``operation`` (a database operation on this store) in a task of its own that
        the caller only waits for (``_detached``): for the modules that keep other tables in
        this database (``service.collections``)."""
        task = asyncio.ensure_future(operation)
        self._operations.add(task)
        task.add_done_callback(self._operation_done)
        return await asyncio.shield(task)

    detach.__detached__ = True  # type: ignore[attr-defined]  # it is what detaches the others

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One write transaction, taking this process's turn on SQLite."""
        async with self._write() as session:
            yield session

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; database errors leave as ``StoreUnavailable``."""
        with _translated():
            async with self._sessions() as session:
                yield session

    def _operation_done(self, task: asyncio.Future[Any]) -> None:
        self._operations.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that left does not want it, nor the logs

    @_detached
    async def check(self) -> None:
        with _translated():
            async with self._sessions() as session:
                await session.execute(select(1))

    # -- runs ---------------------------------------------------------------------------------

    @_detached
    async def create(
        self,
        run_id: str,
        mode: str,
        question: str,
        *,
        owner: str = "",
        thread_id: str | None = None,
        status: str = "running",
    ) -> None:
        now = _now()
        record = RunRecord(
            run_id=run_id,
            created_at=now,
            updated_at=now,
            mode=mode,
            question=question,
            status=status,
            steps=[],
            usage={},
            details={},
            duration_ms=0.0,
            owner=owner,
            thread_id=thread_id,
        )
        async with self._write() as session:
            if thread_id is not None:  # still there, idle, and kept so until this is recorded
                held = await session.scalar(
                    select(ThreadRecord.thread_id)
                    .where(ThreadRecord.thread_id == thread_id)
                    .with_for_update()
                )
                if held is None:
                    raise ThreadGone(f"thread {thread_id} was deleted")
                # Decided here, in the transaction that records the run, with the thread's
                # row locked: a process's own check before it could not see another worker's
                # run starting in the same thread, and both ran (red-team pass EY).
                active = await session.scalar(_active_in(thread_id))
                if active is not None:
                    raise ThreadBusy(thread_id, active)
            session.add(record)

    @_detached
    async def record_events(
        self,
        run_id: str,
        events: list[tuple[int, str, dict[str, Any]]],
        *,
        status: str | None = None,
        steps: list[dict[str, Any]] | None = None,
        usage: dict[str, int] | None = None,
    ) -> None:
        """Append events ``(seq, name, data)`` and, in the same transaction, the run's
        progress so far."""
        values: dict[str, Any] = {"updated_at": _now()}
        if status is not None:
            values["status"] = status
        if steps is not None:
            values["steps"] = steps
        if usage is not None:
            values["usage"] = usage
        async with self._write() as session:
            for seq, event, data in events:
                session.add(EventRecord(run_id=run_id, seq=seq, event=event, data=data))
            await session.execute(
                update(RunRecord).where(RunRecord.run_id == run_id).values(**values)
            )

    @_detached
    async def finish(
        self,
        /,
        run_id: str,
        *,
        events: Sequence[tuple[int, str, dict[str, Any]]] = (),
        **fields: Any,
    ) -> None:
        """The run's end, and its last ``events`` (the ``final`` one, and any that could not
        be written earlier), in one transaction. One UPDATE, not a read then a write: a
        transaction that reads first must upgrade its lock to write, which is where SQLite
        gives up on a busy database."""
        fields.setdefault("updated_at", _now())
        statement = update(RunRecord).where(RunRecord.run_id == run_id).values(**fields)
        async with self._write() as session:
            result = await session.execute(statement)
            if getattr(result, "rowcount", None) != 0:
                for seq, event, data in events:
                    session.add(EventRecord(run_id=run_id, seq=seq, event=event, data=data))
        if getattr(result, "rowcount", 1) == 0:
            raise StoreUnavailable(f"the run store has no record of run {run_id}")

    @_detached
    async def mark_interrupted(self, *, older_than: dt.datetime | None = None) -> int:
        """Runs left queued or running by a process that is gone: ``interrupted``. Only
        those not updated since ``older_than`` when given (several replicas share a store)."""
        condition: ColumnElement[bool] = RunRecord.status.in_(ACTIVE)
        if older_than is not None:
            condition = and_(condition, RunRecord.updated_at < older_than)
        statement = (
            update(RunRecord)
            .where(condition)
            .values(
                status="interrupted",
                error="the service stopped while this run was in progress",
                updated_at=_now(),
            )
        )
        async with self._write() as session:
            result = await session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    @_detached
    async def request_cancel(self, run_id: str) -> bool:
        """Ask whichever process runs ``run_id`` to cancel it; False when it is not active."""
        statement = (
            update(RunRecord)
            .where(RunRecord.run_id == run_id, RunRecord.status.in_(ACTIVE))
            .values(cancel_requested=True)
        )
        async with self._write() as session:
            result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))

    @_detached
    async def cancels_requested(self, run_ids: Sequence[str]) -> list[str]:
        """Those of ``run_ids`` (this process's runs) that another process asked to cancel."""
        statement = select(RunRecord.run_id).where(
            RunRecord.run_id.in_(run_ids), RunRecord.cancel_requested.is_(True)
        )
        with _translated():
            async with self._sessions() as session:
                return list((await session.scalars(statement)).all())

    @_detached
    async def get(self, run_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """The run, or None; with ``owner``, None too when another owner's."""
        with _translated():
            async with self._sessions() as session:
                record = await session.get(RunRecord, run_id)
                if record is None or (owner is not None and record.owner != owner):
                    return None
                return record.as_dict()

    @_detached
    async def events(self, run_id: str, after: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
        statement = (
            select(EventRecord)
            .where(EventRecord.run_id == run_id, EventRecord.seq > after)
            .order_by(EventRecord.seq)
        )
        with _translated():
            async with self._sessions() as session:
                rows = (await session.scalars(statement)).all()
        return [(row.seq, row.event, row.data) for row in rows]

    @_detached
    async def list_runs(
        self,
        owner: str,
        *,
        thread_id: str | None = None,
        status: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; the cursor for the next page, or None at the end."""
        statement = select(RunRecord).where(RunRecord.owner == owner)
        if thread_id is not None:
            statement = statement.where(RunRecord.thread_id == thread_id)
        if status is not None:
            statement = statement.where(RunRecord.status == status)
        statement = _page(statement, RunRecord.created_at, RunRecord.run_id, cursor, limit)
        with _translated():
            async with self._sessions() as session:
                rows = list((await session.scalars(statement)).all())
        rows, following = _cut(rows, limit, lambda row: (row.created_at, row.run_id))
        return [row.as_dict() for row in rows], following

    @_detached
    async def active_run(self, thread_id: str) -> str | None:
        with _translated():
            async with self._sessions() as session:
                found: str | None = await session.scalar(_active_in(thread_id))
                return found

    # -- threads ------------------------------------------------------------------------------

    @_detached
    async def create_thread(
        self, thread_id: str, owner: str, meta: dict[str, Any]
    ) -> dict[str, Any]:
        record = ThreadRecord(
            thread_id=thread_id,
            owner=owner,
            created_at=_now(),
            meta=meta,
            summary=None,
            summarized=0,
        )
        async with self._write() as session:
            if not self.sqlite:  # count and insert as one step, or concurrent creates pass the cap
                await session.execute(
                    select(func.pg_advisory_xact_lock(_THREADS_LOCK, func.hashtext(owner)))
                )
            held = await session.scalar(
                select(func.count()).select_from(ThreadRecord).where(ThreadRecord.owner == owner)
            )
            if (held or 0) >= MAX_THREADS_PER_OWNER:
                raise TooManyThreads(
                    f"you have {MAX_THREADS_PER_OWNER} threads, the limit; delete some first"
                )
            session.add(record)
        return record.as_dict()

    @_detached
    async def get_thread(self, thread_id: str, owner: str) -> dict[str, Any] | None:
        """The thread with its memory state (``summary``, ``summarized``), or None."""
        with _translated():
            async with self._sessions() as session:
                record = await session.get(ThreadRecord, thread_id)
                if record is None or record.owner != owner:
                    return None
                return {
                    **record.as_dict(),
                    "summary": record.summary,
                    "summarized": record.summarized,
                }

    @_detached
    async def get_thread_memory(self, thread_id: str) -> ThreadMemory:
        """The thread's running summary and how many of its turns it folds."""
        with _translated():
            async with self._sessions() as session:
                record = await session.get(ThreadRecord, thread_id)
        if record is None:
            return ThreadMemory(None, 0)
        return ThreadMemory(record.summary, record.summarized)

    @_detached
    async def thread_runs(self, thread_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The thread's runs, oldest first (its turns)."""
        statement = (
            select(RunRecord)
            .where(RunRecord.thread_id == thread_id)
            .order_by(RunRecord.created_at, RunRecord.run_id)
            .limit(limit)
        )
        with _translated():
            async with self._sessions() as session:
                return [row.as_dict() for row in (await session.scalars(statement)).all()]

    @_detached
    async def list_threads(
        self, owner: str, *, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        statement = select(ThreadRecord).where(ThreadRecord.owner == owner)
        statement = _page(statement, ThreadRecord.created_at, ThreadRecord.thread_id, cursor, limit)
        with _translated():
            async with self._sessions() as session:
                rows = list((await session.scalars(statement)).all())
        rows, following = _cut(rows, limit, lambda row: (row.created_at, row.thread_id))
        return [row.as_dict() for row in rows], following

    @_detached
    async def delete_thread(self, thread_id: str, owner: str) -> bool:
        """The thread, its runs, their events and feedback; False when there is none.
        ``ThreadActive`` when a run of it has not ended, decided in the same transaction as
        the delete, with the thread's row locked (a run starting in the thread takes a share
        of that lock): checked apart, a run started between the check and the delete was
        deleted as it began."""
        runs = select(RunRecord.run_id).where(RunRecord.thread_id == thread_id)
        async with self._write() as session:
            found = await session.get(ThreadRecord, thread_id, with_for_update=True)
            if found is None or found.owner != owner:
                return False
            active = await session.scalar(_active_in(thread_id))
            if active is not None:
                raise ThreadActive(thread_id, active)
            await session.execute(runs.with_for_update())  # feedback being given waits (or not)
            await session.execute(delete(EventRecord).where(EventRecord.run_id.in_(runs)))
            await session.execute(delete(FeedbackRecord).where(FeedbackRecord.run_id.in_(runs)))
            await session.execute(delete(RunRecord).where(RunRecord.thread_id == thread_id))
            await session.delete(found)
        return True

    @_detached
    async def delete_older_than(self, cutoff: dt.datetime, batch: int = 500) -> int:
        """At most ``batch`` of what ``RUN_RETENTION_DAYS`` lets go, oldest first: runs
        outside a thread that started before ``cutoff`` and have ended, with their events and
        feedback; and threads made before it that no run started in since and none runs in,
        whole (deleting a thread's older turns alone would change what its memory folds).
        How many runs and threads went; 0 when nothing is left to delete."""
        async with self._write() as session:
            runs = list(
                (
                    await session.scalars(
                        select(RunRecord.run_id)
                        .where(
                            RunRecord.created_at < cutoff,
                            RunRecord.thread_id.is_(None),
                            RunRecord.status.not_in(ACTIVE),
                        )
                        .order_by(RunRecord.created_at)
                        .limit(batch)
                    )
                ).all()
            )
            recent = select(RunRecord.thread_id).where(
                RunRecord.thread_id.is_not(None),
                or_(RunRecord.created_at >= cutoff, RunRecord.status.in_(ACTIVE)),
            )
            threads = list(
                (
                    await session.scalars(
                        select(ThreadRecord.thread_id)
                        .where(
                            ThreadRecord.created_at < cutoff, ThreadRecord.thread_id.not_in(recent)
                        )
                        .order_by(ThreadRecord.created_at)
                        .limit(max(1, batch // 10))  # a thread may hold many runs
                        # Locked as ``create`` and ``delete_thread`` lock them, and those a
                        # run is being recorded in right now left for the next sweep; then
                        # asked again, since a run recorded before the lock was not seen by
                        # the query that chose them (on Postgres the sweep deleted a run
                        # just recorded, or left it without its thread: pass FA).
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if threads:
                since = set(
                    (
                        await session.scalars(
                            recent.where(RunRecord.thread_id.in_(threads)).distinct()
                        )
                    ).all()
                )
                threads = [thread for thread in threads if thread not in since]
            if threads:
                in_threads = select(RunRecord.run_id).where(RunRecord.thread_id.in_(threads))
                runs.extend((await session.scalars(in_threads)).all())
            if runs:
                held = select(RunRecord.run_id).where(RunRecord.run_id.in_(runs))
                await session.execute(held.with_for_update())  # as delete_thread does
                await session.execute(delete(EventRecord).where(EventRecord.run_id.in_(runs)))
                await session.execute(delete(FeedbackRecord).where(FeedbackRecord.run_id.in_(runs)))
                await session.execute(delete(RunRecord).where(RunRecord.run_id.in_(runs)))
            if threads:
                await session.execute(
                    delete(ThreadRecord).where(ThreadRecord.thread_id.in_(threads))
                )
        return len(runs) + len(threads)

    @_detached
    async def save_summary(self, thread_id: str, summary: str | None, summarized: int) -> None:
        statement = (
            update(ThreadRecord)
            .where(ThreadRecord.thread_id == thread_id)
            .values(summary=summary, summarized=summarized)
        )
        async with self._write() as session:
            await session.execute(statement)

    # -- feedback -----------------------------------------------------------------------------

    @_detached
    async def put_feedback(self, run_id: str, owner: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or update this owner's feedback on the run (only the fields given)."""
        now = _now()
        async with self._write() as session:
            # The run, held until the feedback is in: a delete of its thread or the
            # retention sweep locks it first, so either the feedback goes with the run or
            # it finds the run gone (pass FA: feedback given while its thread was deleted
            # outlived it, comment included, 33 times in 40 on SQLite).
            held = await session.scalar(
                select(RunRecord.run_id)
                .where(RunRecord.run_id == run_id)
                .with_for_update(read=True)
            )
            if held is None:
                raise RunGone(f"run {run_id} was deleted")
            record = await session.get(FeedbackRecord, (run_id, owner))
            if record is None:
                record = FeedbackRecord(run_id=run_id, owner=owner, created_at=now)
                session.add(record)
            for name, value in fields.items():
                setattr(record, name, value)
            record.updated_at = now
        return record.as_dict()

    @_detached
    async def feedback(self, run_id: str, owner: str) -> dict[str, Any] | None:
        with _translated():
            async with self._sessions() as session:
                record = await session.get(FeedbackRecord, (run_id, owner))
                return record.as_dict() if record is not None else None

    @_detached
    async def export_rows(
        self, owner: str, *, since: dt.datetime | None, with_feedback_only: bool, limit: int
    ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Runs with this owner's feedback on them, oldest first (bounded by ``limit``)."""
        joined = and_(FeedbackRecord.run_id == RunRecord.run_id, FeedbackRecord.owner == owner)
        statement = (
            select(RunRecord, FeedbackRecord)
            .outerjoin(FeedbackRecord, joined)
            .where(RunRecord.owner == owner)
        )
        if with_feedback_only:
            statement = statement.where(FeedbackRecord.run_id.is_not(None))
        if since is not None:
            statement = statement.where(
                or_(RunRecord.created_at >= since, FeedbackRecord.updated_at >= since)
            )
        statement = statement.order_by(RunRecord.created_at, RunRecord.run_id).limit(limit)
        with _translated():
            async with self._sessions() as session:
                rows = (await session.execute(statement)).all()
        return [(run.as_dict(), fb.as_dict() if fb is not None else None) for run, fb in rows]

    # -- plumbing -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        lock = self._writing if self._writing is not None else contextlib.nullcontext()
        async with lock, self._sessions() as session:
            with _translated():
                async with session.begin():
                    if self.sqlite:  # see _begin_writes_at_once
                        await session.connection(execution_options={_IMMEDIATE: True})
                    yield session


def _active_in(thread_id: str) -> Any:
    """A run of the thread that has not ended, if any (its id)."""
    return (
        select(RunRecord.run_id)
        .where(RunRecord.thread_id == thread_id, RunRecord.status.in_(ACTIVE))
        .limit(1)
    )


_IMMEDIATE = "reactpal_sqlite_immediate"  # an execution option: this transaction writes


def _begin_writes_at_once(engine: AsyncEngine) -> None:
    """SQLite: a write transaction takes the database's write lock when it begins (``BEGIN
    IMMEDIATE``), so what it reads before it writes is what it writes on, whatever another
    process (``WORKERS``) does meanwhile; a read runs as it did under Python's driver, each
    statement on its own. The driver began a transaction itself, only at its first write: two
    workers both found a thread idle and both started a run in it, and a thread deleted
    while a run was recorded in it lost that run (red-team pass EY). SQLAlchemy's recipe."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_IMMEDIATE, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _page(statement: Any, moment: Any, key: Any, cursor: str | None, limit: int) -> Any:
    """Newest first, after ``cursor``, one more row than asked (to know whether more follow)."""
    if cursor is not None:
        at, last = decode_cursor(cursor)
        statement = statement.where(or_(moment < at, and_(moment == at, key < last)))
    return statement.order_by(moment.desc(), key.desc()).limit(min(limit, MAX_PAGE) + 1)


def _cut(
    rows: list[_Row], limit: int, position: Callable[[_Row], tuple[dt.datetime, str]]
) -> tuple[list[_Row], str | None]:
    """A page fetched one row long (``_page``): its rows, and the cursor after the last one
    when more follow."""
    page = rows[:limit]
    return page, encode_cursor(*position(page[-1])) if len(rows) > limit else None
