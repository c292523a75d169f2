"""Two replicas of the service, as separate ``python -m service`` processes on their own
ports, sharing one real Postgres (the run store) and one real Redis (the limits): a run
started through one is visible, streamable and cancellable through the other; the rate limit
is counted once for both; a replica killed mid-run leaves a run that the next replica to
start marks ``interrupted``."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.live import FakeLLM, Service, serve
from tests.service.test_runs_live import QUESTION, read_events

GATED = QUESTION  # step 0 waits for llm.release(): a run held in progress


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@contextlib.contextmanager
def replica(
    tmp_path: Path, name: str, llm: FakeLLM, postgres_url: str, redis_url: str, **extra: str
) -> Iterator[Service]:
    workdir = tmp_path / name
    workdir.mkdir()
    with serve(
        workdir,
        llm_url=llm.url,
        database_url=postgres_url,
        RATE_LIMIT_STORAGE_URL=redis_url,
        **extra,
    ) as service:
        yield service


def test_two_replicas_share_runs_cancels_limits_and_orphans(
    llm: FakeLLM, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    shared = {"RATE_LIMIT": "4/minute"}
    llm.arm()
    try:
        with (
            replica(tmp_path, "a", llm, postgres_url, redis_url, **shared) as one,
            replica(tmp_path, "b", llm, postgres_url, redis_url, **shared) as two,
        ):
            # Started through one, seen and followed through the other.
            run_id = one.client.post("/runs", json={"question": GATED}).json()["run_id"]
            assert llm.gated.wait(10)
            assert two.client.get(f"/runs/{run_id}").json()["status"] == "running"
            first = read_events(two.client, f"/runs/{run_id}/events", stop_after=1)
            assert [event for _, event, _ in first] == ["run"]
            # Cancelled through the other: the replica that runs it stops it and stores it.
            started = time.monotonic()
            cancelled = two.client.post(f"/runs/{run_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            assert time.monotonic() - started < 5
            assert one.client.get(f"/runs/{run_id}").json()["status"] == "cancelled"
            events = read_events(two.client, f"/runs/{run_id}/events")
            assert events[-1][1] == "final" and events[-1][2]["status"] == "cancelled"
            assert two.client.post(f"/runs/{run_id}/cancel").status_code == 409
            llm.release()

            # A replica killed mid-run: its run stays "running" until a replica starts and
            # finds it silent for longer than any run may last (REQUEST_TIMEOUT_S + 10 s).
            llm.arm()
            orphan = two.client.post("/runs", json={"question": GATED})
            assert orphan.status_code == 202, orphan.text
            orphan_id = orphan.json()["run_id"]
            assert llm.gated.wait(10)
            os.kill(two.pid, signal.SIGKILL)
            two.process.wait(10)
            assert one.client.get(f"/runs/{orphan_id}").json()["status"] == "running"
            time.sleep(12.5)
            with replica(
                tmp_path, "c", llm, postgres_url, redis_url, REQUEST_TIMEOUT_S="2", **shared
            ) as three:
                stored = three.client.get(f"/runs/{orphan_id}").json()
                assert stored["status"] == "interrupted", stored
                assert one.client.get(f"/runs/{run_id}").json()["status"] == "cancelled"
                llm.release()
                # One rate limit for all (4 a minute per client), two taken above.
                asked = [
                    server.client.post("/ask", json={"question": "What is 2+2?"})
                    for server in (one, three, one)
                ]
                assert [r.status_code for r in asked] == [200, 200, 429], asked[-1].text
                assert int(asked[-1].headers["retry-after"]) >= 1
    finally:
        llm.release()
