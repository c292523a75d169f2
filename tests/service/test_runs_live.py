"""Runs as resources against a real server (uvicorn on loopback, a scripted model server):
following a run live and resuming after a dropped connection, cancel latency, and runs left
in progress by a killed process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.service.live import ANSWER, FakeLLM, serve
from tests.service.live import QUESTION as UNGATED

QUESTION = "What is 1234 * 5678? [fault:gated]"
Event = tuple[int, str, dict[str, Any]]


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def read_events(
    client: httpx2.Client, path: str, *, stop_after: int | None = None, **headers: str
) -> list[Event]:
    """The SSE events at ``path``; with ``stop_after``, hang up after that many."""
    events: list[Event] = []
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
                continue
            if "event" in fields:
                events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                if stop_after is not None and len(events) >= stop_after:
                    break
            fields = {}
    return events


def test_follow_a_run_live_and_resume_after_a_dropped_connection(
    llm: FakeLLM, tmp_path: Path
) -> None:
    llm.arm()
    with serve(tmp_path, llm_url=llm.url) as service:
        try:
            run_id = service.client.post("/runs", json={"question": QUESTION}).json()["run_id"]
            assert llm.gated.wait(10)
            # Live: the first event arrives while the model is still held; then hang up.
            first = read_events(service.client, f"/runs/{run_id}/events", stop_after=1)
            assert [(seq, name) for seq, name, _ in first] == [(1, "run")]
            assert service.client.get(f"/runs/{run_id}").json()["status"] == "running"
            threading.Timer(0.5, llm.release).start()
            rest = read_events(service.client, f"/runs/{run_id}/events", **{"last-event-id": "1"})
        finally:
            llm.release()
        assert [seq for seq, _, _ in rest] == list(range(2, 2 + len(rest)))
        assert rest[-1][1] == "final" and rest[-1][2]["answer"] == "7006652"
        replay = read_events(service.client, f"/runs/{run_id}/events")
        assert replay == first + rest  # what was followed live is what the store replays


def test_cancel_latency_while_the_model_is_answering(llm: FakeLLM, tmp_path: Path) -> None:
    llm.arm()
    with serve(tmp_path, llm_url=llm.url) as service:
        try:
            run_id = service.client.post("/runs", json={"question": QUESTION}).json()["run_id"]
            assert llm.gated.wait(10)
            started = time.monotonic()
            cancelled = service.client.post(f"/runs/{run_id}/cancel")
            took = time.monotonic() - started
        finally:
            llm.release()
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert took < 1.0, took


def test_runs_left_by_a_killed_process_are_interrupted(llm: FakeLLM, tmp_path: Path) -> None:
    llm.arm()
    try:
        with serve(tmp_path, llm_url=llm.url) as service:
            run_id = service.client.post("/runs", json={"question": QUESTION}).json()["run_id"]
            assert llm.gated.wait(10)
            os.kill(service.pid, signal.SIGKILL)
            service.process.wait(10)
    finally:
        llm.release()
    with serve(tmp_path, llm_url=llm.url) as again:
        run = again.client.get(f"/runs/{run_id}").json()
        assert run["status"] == "interrupted", run
        assert "stopped while this run was in progress" in run["error"]
        assert again.client.post(f"/runs/{run_id}/cancel").status_code == 409


def test_stopping_the_service_interrupts_its_runs(llm: FakeLLM, tmp_path: Path) -> None:
    """SIGTERM: the run in progress is cancelled and stored as interrupted, not left running."""
    llm.arm()
    try:
        with serve(tmp_path, llm_url=llm.url) as service:
            run_id = service.client.post("/runs", json={"question": QUESTION}).json()["run_id"]
            assert llm.gated.wait(10)
    finally:
        llm.release()
    assert service.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the SIGTERM it handled
    with sqlite3.connect(service.db_path) as db:  # as the stopped service left it
        status, error = db.execute(
            "SELECT status, error FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    assert (status, error) == ("interrupted", "the service stopped while this run was in progress")


def test_sigterm_drains_the_runs_in_progress_then_stops(llm: FakeLLM, tmp_path: Path) -> None:
    """Issue 11: SIGTERM stops the intake (a new run is refused, or the socket is closed)
    and lets a run in progress finish within SHUTDOWN_GRACE_S: it is stored finished, not
    interrupted."""
    llm.arm()
    try:
        with serve(tmp_path, llm_url=llm.url, SHUTDOWN_GRACE_S="20") as service:
            run_id = service.client.post("/runs", json={"question": QUESTION}).json()["run_id"]
            assert llm.gated.wait(10)
            service.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            try:
                late = service.new_client(timeout_s=5).post("/ask", json={"question": "late"})
                assert late.status_code == 503, late.text  # draining: no new run
            except httpx2.TransportError:
                pass  # or the listening socket is already closed
            assert service.alive()  # waiting for the run, not gone
            llm.release()
            service.process.wait(20)
    finally:
        llm.release()
    assert service.returncode in (0, -signal.SIGTERM), service.output
    with sqlite3.connect(service.db_path) as db:
        (status,) = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    assert status == "finished", service.output


def test_two_workers_serve_share_the_store_and_sum_their_metrics(
    llm: FakeLLM, tmp_path: Path
) -> None:
    """WORKERS=2: two uvicorn worker processes on one port and one SQLite file (one writer
    at a time, the others wait); every run stored, whichever worker ran it, and /metrics
    (asked of either) counts them all."""
    with serve(tmp_path, llm_url=llm.url, WORKERS="2", start_timeout_s=60) as service:
        workers = _children_running_uvicorn(service.pid)
        assert len(workers) == 2, workers
        runs = 12
        clients = [service.new_client() for _ in range(4)]
        try:
            answered = [
                clients[n % 4].post("/ask", json={"question": UNGATED}) for n in range(runs)
            ]
            assert [r.status_code for r in answered] == [200] * runs, answered[-1].text
            assert {r.json()["answer"] for r in answered} == {ANSWER}
            ids = {r.json()["run_id"] for r in answered}
            listed = service.client.get("/runs", params={"limit": 100}).json()["runs"]
            assert ids <= {run["run_id"] for run in listed}
            for client in clients:
                metrics = client.get("/metrics").text
                finished = [
                    line
                    for line in metrics.splitlines()
                    if line.startswith('reactpal_runs_total{mode="react",status="finished"}')
                ]
                assert finished and float(finished[0].split()[-1]) == runs, metrics
        finally:
            for client in clients:
                client.close()
    assert service.returncode in (0, -signal.SIGTERM), service.output


def _children_running_uvicorn(pid: int) -> list[int]:
    """The worker processes: children of ``pid`` whose command line is Python's."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_json_client_that_hangs_up_cancels_its_run(llm: FakeLLM, tmp_path: Path) -> None:
    """A non-streamed /ask whose client goes away is cancelled (it used to run on to its
    deadline); with "background": true it runs on."""
    llm.arm()
    with serve(tmp_path, llm_url=llm.url) as service:
        try:
            with (
                httpx2.Client(base_url=service.base_url, timeout=1.0) as impatient,
                pytest.raises(httpx2.ReadTimeout),
            ):
                impatient.post("/ask", json={"question": QUESTION})
            assert llm.gated.wait(10)
            runs = service.client.get("/runs").json()["runs"]
            deadline = time.monotonic() + 10
            while runs[0]["status"] not in ("cancelled", "finished"):
                assert time.monotonic() < deadline, runs
                time.sleep(0.05)
                runs = service.client.get("/runs").json()["runs"]
        finally:
            llm.release()
        assert (runs[0]["status"], runs[0]["error"]) == (
            "cancelled",
            "the client disconnected before the end",
        )
