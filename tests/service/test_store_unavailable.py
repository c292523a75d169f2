"""The run store failing, in process: the quick regression tests for what
``test_faults.py`` shows over real HTTP. Before the fix, a run that could not be recorded was an
unhandled 500 (after which uvicorn dropped the connection), a run whose end could not be stored
was answered as if it had been (and stayed ``running`` for good), and reading a run under way,
or any run while the store was down, was a 500 too."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes import FakeOpenAI
from tests.fakes.llm import FakeRequest
from tests.service.conftest import AppFactory

PROBLEM = "application/problem+json"
STEPS = (
    "Thought: multiply exactly\nAction: python[print(1234 * 5678)]",
    "Thought: done\nAction: finish[7006652]",
)


@contextmanager
def _locked(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the SQLite file's exclusive lock."""
    lock = sqlite3.connect(db, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        yield lock
    finally:
        lock.rollback()
        lock.close()


def _url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/runs.db?timeout=0.2"  # a short busy timeout


async def test_a_run_that_cannot_be_recorded_is_refused_with_503(
    app_client: AppFactory, tmp_path: Path
) -> None:
    async with app_client(FakeOpenAI(list(STEPS)), database_url=_url(tmp_path)) as client:
        with _locked(tmp_path / "runs.db"):
            for stream in (False, True):
                response = await client.post("/ask", json={"question": "q", "stream": stream})
                assert response.status_code == 503, response.text
                assert response.headers["content-type"].startswith(PROBLEM)
                assert response.headers["retry-after"] == "5"
                assert response.json()["detail"] == (
                    "the run store is unavailable (database is locked); the run was not started"
                )
            read = await client.get("/runs/0123abcd")
            assert read.status_code == 503, read.text
            assert read.json()["detail"] == "the run store is unavailable (database is locked)"
        response = await client.post("/ask", json={"question": "What is 1234 * 5678?"})
        assert response.status_code == 200 and response.json()["stored"] is True


async def test_a_run_whose_end_cannot_be_stored_says_so(
    app_client: AppFactory, tmp_path: Path
) -> None:
    held: list[sqlite3.Connection] = []

    def script(request: FakeRequest) -> str:
        if "Observation" not in request.text:
            return STEPS[0]
        held.append(sqlite3.connect(tmp_path / "runs.db", isolation_level=None))
        held[-1].execute("BEGIN EXCLUSIVE")  # the store locks up before the run ends
        return STEPS[1]

    async with app_client(FakeOpenAI(script), database_url=_url(tmp_path)) as client:
        try:
            response = await client.post("/ask", json={"question": "What is 1234 * 5678?"})
        finally:
            for lock in held:
                lock.rollback()
                lock.close()
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["answer"], body["stored"]) == ("finished", "7006652", False)
        assert body["store_error"] == (
            "the run could not be stored: the run store is unavailable (database is locked)"
        )
        # Its start was recorded, its end was not: "running", readable (it was a 500).
        stored = await client.get(f"/runs/{body['run_id']}")
        assert stored.status_code == 200, stored.text
        assert (stored.json()["status"], stored.json()["stored"]) == ("running", True)


async def test_a_streamed_run_whose_end_cannot_be_stored_says_so_in_its_final_event(
    app_client: AppFactory, tmp_path: Path
) -> None:
    held: list[sqlite3.Connection] = []

    def script(request: FakeRequest) -> str:
        held.append(sqlite3.connect(tmp_path / "runs.db", isolation_level=None))
        held[-1].execute("BEGIN EXCLUSIVE")
        return STEPS[1]

    async with app_client(FakeOpenAI(script), database_url=_url(tmp_path)) as client:
        try:
            response = await client.post("/ask", json={"question": "q", "stream": True})
        finally:
            for lock in held:
                lock.rollback()
                lock.close()
        assert response.status_code == 200
        final = response.text.split("event: final")[1].split("data: ", 1)[1].splitlines()[0]
        told = json.loads(final)
        assert told["stored"] is False and "database is locked" in told["store_error"]
