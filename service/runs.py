"""The runs this process is running: each one an asyncio task, whoever asked for it.

``/ask`` (JSON or stream), ``POST /runs`` and the MCP/OpenAI doors all go through
``RunManager.submit``: the run is admitted (``service.admission``: a run slot, or 503/429
before anything is recorded), recorded, then runs in its own task, independent of the request
that started it; its slot is given back when it ends, however it ends. A
client that waits for it, or follows its events, only reads; cancelling is explicit
(``cancel``), or done by the route for a client that went away from a run that was not
started in the background.

One active run per thread: ``submit`` refuses a second one (``ThreadBusy``, HTTP 409) while
this process or the store knows of one, decided for good in the transaction that records the
run (another worker's run starting in the same thread is seen there). When the service stops
(SIGTERM), it admits no new run (503), lets the runs going finish for ``SHUTDOWN_GRACE_S``,
then cancels the rest and stores them as ``interrupted``; runs left active by a process that
died are marked ``interrupted`` at start-up (``RunStore.mark_interrupted``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from service.admission import Admission
from service.errors import ProblemError
from service.runner import Event, RunSession
from service.store import ACTIVE, RunStore, StoreUnavailable, ThreadBusy
from tools import sandbox

log = structlog.get_logger(__name__)
FOLLOW_POLL_S = 0.5  # how often a run running elsewhere (another replica) is re-read
CANCEL_POLL_S = 0.5  # how often this process looks for cancels asked of another
CANCEL_WAIT_S = 10.0  # how long a cancel asked of another process waits for its answer


class RunNotActive(Exception):
    """The run has already ended (cancelling it is a 409)."""


CLIENT_GONE = "the client disconnected before the end"


class RunManager:
    def __init__(self, store: RunStore, admission: Admission, *, max_follow_s: float) -> None:
        self._store = store
        self._admission = admission  # how many runs may go on at once: a slot each
        self._max_follow_s = max_follow_s
        self._runs: dict[str, tuple[RunSession, asyncio.Task[None]]] = {}
        self._threads: dict[str, str] = {}  # thread_id -> its active run here
        self._thread_lock = asyncio.Lock()
        self._draining = False
        self._watcher: asyncio.Task[None] | None = None

    async def submit(self, session: RunSession, client: str = "") -> RunSession:
        """Admit the run for ``client`` (its API key, else its address), record it and start
        it; ``ProblemError`` (503/429, full), ``StoreUnavailable`` (503) or ``ThreadBusy``
        (409) before anything runs."""
        if self._draining:
            raise ProblemError(
                503, "the service is shutting down; retry shortly", headers={"Retry-After": "1"}
            )
        thread = session.thread_id
        async with self._thread_lock if thread else contextlib.nullcontext():
            if thread is not None:
                active = self._threads.get(thread) or await self._store.active_run(thread)
                if active is not None:
                    raise ThreadBusy(thread, active)
            await self._admission.admit(session.run_id, client)
            try:
                await session.create()
            except BaseException:
                await self._release(session, client)
                raise
            if thread is not None:
                self._threads[thread] = session.run_id
        task = asyncio.create_task(self._run(session, client), name=f"run-{session.run_id}")
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_cancels(), name="cancel-watcher")
        self._runs[session.run_id] = (session, task)
        task.add_done_callback(lambda _: self._forget(session))
        return session

    def get(self, run_id: str) -> RunSession | None:
        """The run, while it is in progress in this process."""
        entry = self._runs.get(run_id)
        return entry[0] if entry is not None else None

    async def cancel(self, run_id: str, why: str | None = None) -> None:
        """Cancel a run in progress and wait until it is stored as ``cancelled``: here, or,
        when another process (worker, replica) runs it, by asking that one through the store
        and waiting for its answer (``CANCEL_WAIT_S`` at most). ``RunNotActive`` when no
        process runs it."""
        entry = self._runs.get(run_id)
        if entry is None:
            if not await self._store.request_cancel(run_id):
                raise RunNotActive(run_id)
            give_up = asyncio.get_running_loop().time() + CANCEL_WAIT_S
            while asyncio.get_running_loop().time() < give_up:
                await asyncio.sleep(CANCEL_POLL_S / 2)
                record = await self._store.get(run_id)
                if record is None or record["status"] not in ACTIVE:
                    break
            return
        session, task = entry
        session.stop("cancelled", why)
        if not task.cancelling():  # once: a second cancel must not cut the first one's end
            task.cancel()
        with contextlib.suppress(TimeoutError):  # its end is written; answer in time anyway
            async with asyncio.timeout(CANCEL_WAIT_S):
                await asyncio.shield(session.done.wait())

    def request_cancel(self, run_id: str, why: str | None = None) -> bool:
        """Cancel without waiting (from code that may itself be cancelled: a stream whose
        client went away); False when the run is not in progress here."""
        entry = self._runs.get(run_id)
        if entry is None:
            return False
        entry[0].stop("cancelled", why)
        if not entry[1].cancelling():
            entry[1].cancel()
        return True

    async def follow(self, run_id: str, after: int = 0) -> AsyncIterator[Event]:
        """A run's events after ``after``: from memory while it runs here, else from the
        store; a run still active in another process is re-read until it ends (bounded by
        the longest a run may last)."""
        session = self.get(run_id)
        if session is not None:
            async for event in session.follow(after):
                yield event
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._max_follow_s
        sent = after
        while True:
            # Whether it has ended, read before its events: a run's end is stored with its
            # last events (``RunStore.finish``), so once it is seen, they are all there. Read
            # after them, a run that ended in between ended the stream without its last step
            # and its final event (red-team pass FA).
            record = await self._store.get(run_id)
            ended = record is None or record["status"] not in ACTIVE
            for event in await self._store.events(run_id, sent):
                yield event
                sent = event[0]
                if event[1] == "final":
                    return
            if ended or loop.time() > give_up:
                return
            await asyncio.sleep(FOLLOW_POLL_S)

    async def aclose(self, grace_s: float = 0.0) -> None:
        """The service stops: no run is admitted any more, the runs still going get
        ``grace_s`` to end, then are cancelled and stored as interrupted."""
        self._draining = True
        if grace_s > 0 and self._runs:
            log.info("draining", runs=len(self._runs), grace_s=grace_s)
            await asyncio.wait([task for _, task in self._runs.values()], timeout=grace_s)
        entries = list(self._runs.values())
        for session, task in entries:
            session.stop("interrupted")
            task.cancel()
        await asyncio.gather(*(task for _, task in entries), return_exceptions=True)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)

    async def _watch_cancels(self) -> None:
        """While runs go on here, cancel those another process was asked to cancel."""
        while self._runs:
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                asked = await self._store.cancels_requested(list(self._runs))
            except StoreUnavailable as exc:
                log.warning("could not read the cancels asked of other processes", error=str(exc))
                continue
            for run_id in asked:
                self.request_cancel(run_id, "cancelled through another process")

    async def _run(self, session: RunSession, client: str) -> None:
        sandbox.OWNER.set(client or None)  # its programs wait their client's turn, not others'
        try:
            await session.execute()
        finally:
            await asyncio.shield(self._release(session, client))

    async def _release(self, session: RunSession, client: str) -> None:
        usage = session.meter.usage
        try:
            await self._admission.release(
                session.run_id, client, usage.prompt_tokens + usage.completion_tokens
            )
        except ProblemError as exc:  # Redis down: the lease lapses by itself
            log.warning("could not give back a run slot", run_id=session.run_id, error=str(exc))

    def _forget(self, session: RunSession) -> None:
        self._runs.pop(session.run_id, None)
        if session.thread_id is not None and self._threads.get(session.thread_id) == session.run_id:
            del self._threads[session.thread_id]
