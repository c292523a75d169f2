"""Fault injection over real HTTP: ``python -m service`` as a real uvicorn, with a fake LLM and a
fake SearxNG served over real sockets, and real faults: HTTP errors, hangs, garbage, dropped
connections, a client that hangs up mid-stream, sandbox processes SIGKILLed mid-run, and a run
store that is locked, read-only or full.

For every fault: the HTTP answer is a documented status (200, or a problem document with 502,
503 or 504; never an unhandled 500, never a dropped connection: each test reuses its client's
keep-alive connection afterwards), the run ends with a clear stored status and error
(``GET /runs/{id}``) or the client is told it could not be stored, and afterwards ``/healthz``
and a normal ``/ask`` still work. One server process per class (scenario group).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import errno
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.service.live import (
    ANSWER,
    QUESTION,
    FakeLLM,
    FakeSearxng,
    Service,
    busy_descendant,
    cpu_ticks,
    descendants,
    serve,
)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find processes"
)

Events = list[tuple[str, dict[str, Any]]]

# -- helpers ----------------------------------------------------------------------------------


def tagged(tag: str, text: str = QUESTION) -> str:
    """A question whose LLM calls get the fault ``tag`` (see ``FakeLLM``); unique per call."""
    return f"{text} #{time.monotonic_ns()} [fault:{tag}]"


def problem(response: httpx2.Response, status: int, *words: str) -> dict[str, Any]:
    """A problem document with ``status`` whose detail says ``words``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for word in words:
        assert word in body["detail"], body
    return body


def stored(client: httpx2.Client, run_id: str) -> dict[str, Any]:
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def wait_stored(client: httpx2.Client, run_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The stored run once it has ended (it is ``running`` until then)."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = stored(client, run_id)
        if run["status"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def stream(
    client: httpx2.Client,
    question: str,
    until: Callable[[Events], bool] | None = None,
    **fields: Any,
) -> Events:
    """``POST /ask`` with ``stream``: the events, up to ``until`` (then the client hangs up)."""
    events: Events = []
    body = {"question": question, "stream": True, **fields}
    with client.stream("POST", "/ask", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.partition(":")[2])))
                if until is not None and until(events):
                    break
    return events


def healthy(client: httpx2.Client) -> None:
    """Liveness, and a normal run end to end: the LLM, the sandbox and the store all work."""
    assert client.get("/healthz").status_code == 200
    response = client.post("/ask", json={"question": QUESTION})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["answer"], body["stored"]) == ("finished", ANSWER, True)
    assert body["steps"][0]["observation"].strip() == ANSWER  # computed by the sandbox
    assert stored(client, body["run_id"])["status"] == "finished"


_ACCESS_STATUS = re.compile(r'HTTP/1\.1" (\d{3})')


def no_unhandled_errors(service: Service) -> None:
    """The server logged no unhandled exception and answered no 5xx but 502, 503, 504."""
    log = service.output
    assert "Exception in ASGI application" not in log, log
    assert "Traceback" not in log, log
    statuses = set(_ACCESS_STATUS.findall(log))
    assert statuses, "no access log lines"
    assert {s for s in statuses if s.startswith("5")} <= {"502", "503", "504"}, statuses
    assert service.alive()


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="class")
def service(
    request: pytest.FixtureRequest, llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One server per class (scenario group), as the class's ``launch`` starts it; it must
    stop cleanly, with nothing unhandled in its log."""
    workdir = tmp_path_factory.mktemp(request.cls.__name__)
    with request.cls.launch(request, llm, workdir) as running:
        yield running
        no_unhandled_errors(running)
    assert running.returncode in (0, -signal.SIGTERM), running.output


@pytest.fixture(scope="class")
def searx() -> Iterator[FakeSearxng]:
    with FakeSearxng() as fake:
        yield fake


@pytest.fixture(scope="class")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    """Where the store lives, and whether that is a small tmpfs (which can fill up)."""
    data = tmp_path_factory.mktemp("store") / "data"
    with _small_tmpfs(data) as mounted:
        yield data, mounted


Launched = contextlib.AbstractContextManager[Service]


# -- the LLM ----------------------------------------------------------------------------------


class TestLLMFaults:
    """LLM_TIMEOUT_S=1 and LLM_MAX_RETRIES=1: two attempts, then the run fails with a 502."""

    @staticmethod
    def launch(request: pytest.FixtureRequest, llm: FakeLLM, workdir: Path) -> Launched:
        return serve(workdir, llm_url=llm.url, LLM_TIMEOUT_S="1", LLM_MAX_RETRIES="1")

    @pytest.mark.parametrize(
        ("tag", "reason", "words", "attempts"),
        [
            ("429", "llm_rate_limited", ["rate limiting (HTTP 429)", "after 2 attempts"], 2),
            ("429-retry-after", "llm_rate_limited", ["HTTP 429", "after 2 attempts"], 2),
            ("500", "llm_unavailable", ["answered HTTP 500", "after 2 attempts"], 2),
            ("hang", "llm_timeout", ["did not answer within 1 s", "after 2 attempts"], 2),
            ("html", "llm_bad_response", ["not JSON"], 1),
            ("bad-json", "llm_bad_response", ["malformed body"], 1),
            ("wrong-shape", "llm_bad_response", ["no choices"], 1),
            ("wrong-choice", "llm_bad_response", ["a choice that has no message"], 1),
            ("truncated", "llm_unavailable", ["cannot reach", "after 2 attempts"], 2),
            ("reset", "llm_unavailable", ["cannot reach", "after 2 attempts"], 2),
        ],
    )
    def test_a_failing_llm_is_a_502_with_a_stored_error_run(
        self, service: Service, llm: FakeLLM, tag: str, reason: str, words: list[str], attempts: int
    ) -> None:
        """The client and the stored run get a stable reason; what the endpoint answered (its
        address, its body) is in the operator's log only."""
        question = tagged(tag)
        with service.new_client() as client:
            started = time.monotonic()
            response = client.post("/ask", json={"question": question})
            elapsed = time.monotonic() - started
            body = problem(response, 502, "the LLM backend", reason)
            assert body["reason"] == reason
            assert body["run_status"] == "error" and "store_error" not in body
            run = stored(client, body["run_id"])
            assert run["status"] == "error" and run["error"] == body["detail"]
            assert run["details"] == {"failure": "llm", "reason": reason}
            upstream = ("127.0.0.1", "/v1", "injected", "<html>", "HTTP ", "attempt")
            for told in (json.dumps(body), json.dumps(run)):
                assert not [word for word in upstream if word in told], told
            logged = [line for line in service.output.splitlines() if body["run_id"] in line]
            assert any(all(word in line for word in words) for line in logged), logged
            calls = llm.calls_for(question)
            assert len(calls) == attempts, calls
            if tag == "429-retry-after":  # Retry-After: 1 was honoured between the attempts
                assert calls[1].at - calls[0].at >= 0.9
            assert elapsed < 6  # bounded: 2 attempts of at most LLM_TIMEOUT_S, plus backoff
            healthy(client)  # on the same keep-alive connection: it was not dropped
        no_unhandled_errors(service)

    def test_one_429_is_retried_and_the_run_finishes(self, service: Service, llm: FakeLLM) -> None:
        question = tagged("429-once")
        with service.new_client() as client:
            response = client.post("/ask", json={"question": question})
            assert response.status_code == 200, response.text
            assert response.json()["answer"] == ANSWER
            calls = llm.calls_for(question)
            assert [c.step for c in calls] == [0, 0, 1]  # the first call again, then step 2
            assert calls[1].at - calls[0].at >= 0.9  # after Retry-After: 1
            assert stored(client, response.json()["run_id"])["status"] == "finished"
        no_unhandled_errors(service)

    def test_a_hang_past_the_run_deadline_is_a_504_at_the_deadline(self, service: Service) -> None:
        with service.new_client() as client:
            started = time.monotonic()
            response = client.post("/ask", json={"question": tagged("hang"), "timeout_s": 0.5})
            assert time.monotonic() - started < 1.5  # the deadline, not LLM_TIMEOUT_S
            body = problem(response, 504, "deadline of 0.5 s passed")
            assert body["run_status"] == "timeout"
            run = stored(client, body["run_id"])
            assert (run["status"], run["details"]) == ("timeout", {"failure": "timeout"})
            healthy(client)
        no_unhandled_errors(service)

    def test_a_retry_after_beyond_the_deadline_does_not_outlive_it(self, service: Service) -> None:
        """429 with ``Retry-After: 3600``: given up at once (502) or waited on until the
        deadline (504), never longer."""
        with service.new_client() as client:
            started = time.monotonic()
            response = client.post("/ask", json={"question": tagged("429-long"), "timeout_s": 2})
            assert time.monotonic() - started < 3
            body = problem(response, response.status_code)
            assert response.status_code in (502, 504), body
            assert stored(client, body["run_id"])["status"] in ("error", "timeout")
            healthy(client)
        no_unhandled_errors(service)

    @pytest.mark.parametrize("tag", ["500", "hang", "truncated", "wrong-shape"])
    def test_a_failing_llm_mid_stream_ends_the_stream_with_an_error_event(
        self, service: Service, tag: str
    ) -> None:
        with service.new_client() as client:
            events = stream(client, tagged(tag))
            names = [name for name, _ in events]
            assert names[0] == "run" and names[-1] == "final", names
            final = events[-1][1]
            assert final["status"] == "error" and final["stored"] is True
            assert final["error"].startswith("the LLM backend")
            assert final["details"]["failure"] == "llm" and final["details"]["reason"]
            assert "127.0.0.1" not in json.dumps(final)
            run = stored(client, events[0][1]["run_id"])
            assert (run["status"], run["error"]) == ("error", final["error"])
            healthy(client)
        no_unhandled_errors(service)

    def test_a_client_that_hangs_up_mid_stream_cancels_the_run(
        self, service: Service, llm: FakeLLM
    ) -> None:
        llm.arm()
        try:
            with service.new_client() as client:

                def under_way(events: Events) -> bool:
                    assert llm.gated.wait(10), "the run did not reach the LLM"
                    # A run under way reads as "running" (it was a 500: not a final status).
                    run = stored(client, events[0][1]["run_id"])
                    assert (run["status"], run["steps"]) == ("running", []), run
                    return True  # then hang up

                with service.new_client() as gone:
                    events = stream(gone, tagged("gated"), until=under_way)
                run = wait_stored(client, events[0][1]["run_id"])
                # Nobody reads it any more: cancelled, not left running (it was not started
                # with "background": true).
                assert run["status"] == "cancelled", run
                assert run["error"] == "the client disconnected before the end"
        finally:
            llm.release()
        with service.new_client() as client:
            healthy(client)
        no_unhandled_errors(service)


# -- search -----------------------------------------------------------------------------------


class TestSearchFaults:
    """SearxNG failing: the run goes on, with an observation that says search is unavailable.
    Ordered: the 429 comes last, since it pauses search for 60 s."""

    @staticmethod
    def launch(request: pytest.FixtureRequest, llm: FakeLLM, workdir: Path) -> Launched:
        searx: FakeSearxng = request.getfixturevalue("searx")
        return serve(
            workdir,
            llm_url=llm.url,
            SEARCH_PROVIDER="searxng",
            SEARXNG_URL=searx.url,
            SEARCH_TIMEOUT_S="1",
        )

    def _search(self, client: httpx2.Client, topic: str) -> tuple[dict[str, Any], str]:
        """A run that searches ``topic`` once, then finishes: its body and the observation."""
        response = client.post("/ask", json={"question": tagged("search", topic)})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["answer"]) == ("finished", "searched")
        assert body["steps"][0]["action"] == "search"
        run = stored(client, body["run_id"])
        assert run["status"] == "finished" and run["steps"] == body["steps"]
        observation: str = body["steps"][0]["observation"]
        return body, observation

    @pytest.mark.parametrize(
        ("mode", "words"),
        [
            ("ok", ["Paris is the capital of France"]),
            ("500", ["search is unavailable right now", "SearxNG failed (HTTP 500)"]),
            ("html", ["search is unavailable right now", "did not answer JSON"]),
            ("hang", ["search is unavailable right now", "did not answer within 1 s"]),
            ("down", ["search is unavailable right now", "SearxNG could not be reached"]),
        ],
    )
    def test_a_failing_search_is_an_observation_and_the_run_goes_on(
        self, service: Service, searx: FakeSearxng, mode: str, words: list[str]
    ) -> None:
        if mode == "down":
            searx.stop()  # connection refused
        searx.mode = mode
        try:
            with service.new_client() as client:
                started = time.monotonic()
                _, observation = self._search(client, f"capital of France {mode}")
                assert time.monotonic() - started < 4
                for word in words:
                    assert word in observation, observation
                healthy(client)
                if mode == "down":  # the failure made the service probe SearxNG: unreachable
                    self._wait_for_search(client, ok=False)
                    body = client.post("/ask", json={"question": tagged("search", "again")})
                    unavailable = body.json()["details"]["unavailable_actions"]
                    assert "SearxNG could not be reached" in unavailable["search"], unavailable
                    assert "unavailable in this run" in body.json()["steps"][0]["observation"]
        finally:
            if mode == "down":
                searx.start()
            searx.mode = "ok"
        if mode in ("hang", "down"):  # back up: runs get search again once a probe says so
            with service.new_client() as client:
                self._wait_for_search(client, ok=True)
        no_unhandled_errors(service)

    @staticmethod
    def _wait_for_search(client: httpx2.Client, *, ok: bool) -> None:
        """Until /readyz (checked at most every 5 s, then a fresh probe) shows search ``ok``."""
        deadline = time.monotonic() + 20
        while True:
            ready = client.get("/readyz")
            checks = ready.json()["checks"]
            if checks["search"]["ok"] is ok:
                assert checks["search"]["required"] is False
                assert ready.status_code == 200  # the service is ready without search
                return
            assert time.monotonic() < deadline, checks
            time.sleep(0.5)

    def test_a_rate_limited_search_backs_off_then_pauses_without_hammering(
        self, service: Service, searx: FakeSearxng
    ) -> None:
        searx.mode = "429"
        with service.new_client() as client:
            before = len(searx.queries)
            _, observation = self._search(client, "capital of Italy")
            assert "rate-limiting this server (HTTP 429)" in observation, observation
            assert "paused for 60 s" in observation
            assert len(searx.queries) - before == 3  # the first try and 2 bounded retries
            # Paused: the next search is refused at once, without calling SearxNG.
            searx.mode = "ok"
            _, observation = self._search(client, "capital of Spain")
            assert "rate-limited this server; paused for another" in observation, observation
            assert len(searx.queries) - before == 3
            healthy(client)
        no_unhandled_errors(service)


# -- the sandbox ------------------------------------------------------------------------------


class TestSandboxFaults:
    """A program that loops until killed (``FakeLLM`` tag ``spin``), killed from outside."""

    @staticmethod
    def launch(request: pytest.FixtureRequest, llm: FakeLLM, workdir: Path) -> Launched:
        return serve(workdir, llm_url=llm.url, SANDBOX_TIMEOUT_S="15")

    def _spin_and_kill(self, service: Service, victim: Callable[[int], int]) -> dict[str, Any]:
        """A run whose program spins; ``victim(busy_child)`` picks the pid to SIGKILL."""
        with (
            concurrent.futures.ThreadPoolExecutor(1) as pool,
            service.new_client() as client,
        ):
            pending = pool.submit(client.post, "/ask", json={"question": tagged("spin")})
            os.kill(victim(busy_descendant(service.pid)), signal.SIGKILL)
            response = pending.result(timeout=30)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert (body["status"], body["answer"]) == ("finished", ANSWER)
            assert stored(client, body["run_id"])["steps"] == body["steps"]
            return body

    def test_a_run_whose_child_is_sigkilled_gets_a_crash_observation(
        self, service: Service
    ) -> None:
        body = self._spin_and_kill(service, lambda child: child)
        observation = body["steps"][0]["observation"]
        assert observation == "Crashed: the program crashed its interpreter (SIGKILL)"
        with service.new_client() as client:
            healthy(client)
        no_unhandled_errors(service)

    def test_a_run_whose_template_is_sigkilled_gets_an_error_and_a_new_template(
        self, service: Service
    ) -> None:
        def template(child: int) -> int:  # the sandbox's process that the service started
            tree = descendants(service.pid)
            return next(p for p in tree if child in descendants(p) and _parent(p) == service.pid)

        body = self._spin_and_kill(service, template)
        assert body["steps"][0]["observation"] == "WorkerCrashed: the sandbox failed; try again"
        with service.new_client() as client:
            healthy(client)  # a new template took over
        no_unhandled_errors(service)

    def test_a_client_that_hangs_up_mid_program_ends_the_program(self, service: Service) -> None:
        def running(events: Events) -> bool:  # hang up once the program is under way
            return events[-1][0] == "action" and busy_descendant(service.pid) > 0

        with service.new_client() as gone:
            events = stream(gone, tagged("spin"), until=running)
        with service.new_client() as client:
            run = wait_stored(client, events[0][1]["run_id"])
            assert run["error"] == "the client disconnected before the end"
            assert run["steps"][0]["action"] == "python"
            # The program was killed with its run: soon nothing burns CPU any more.
            deadline = time.monotonic() + 5
            while True:
                before = {p: cpu_ticks(p) for p in descendants(service.pid)}
                time.sleep(0.3)
                if all(cpu_ticks(p) - t < 10 for p, t in before.items()):
                    break
                assert time.monotonic() < deadline, "the program outlived its run"
            healthy(client)
        no_unhandled_errors(service)


def _parent(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[1])


# -- the run store ----------------------------------------------------------------------------

CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
PR_CAPBSET_DROP = 24


def _without_dac_override() -> Callable[[], None] | None:
    """For root: a ``preexec_fn`` that drops the capabilities which let root write to files
    whatever their permission bits, so that ``chmod`` makes the store read-only for the
    server as it would for any other user."""
    if os.geteuid() != 0:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def drop() -> None:
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")

    return drop


def _bypasses_permissions(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << CAP_DAC_OVERRIDE))
    return False


@contextlib.contextmanager
def _small_tmpfs(path: Path) -> Iterator[bool]:
    """A 512 KiB tmpfs at ``path`` when this user may mount one (a disk that really fills)."""
    path.mkdir()
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        command = ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(path)]
        mounted = subprocess.run(command, capture_output=True, check=False).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


class TestStoreFaults:
    """The SQLite store locked, read-only or full, while a run is under way and when one
    starts. A run held at its first LLM call (``gated``) is the one under way."""

    @staticmethod
    def launch(request: pytest.FixtureRequest, llm: FakeLLM, workdir: Path) -> Launched:
        data, _ = request.getfixturevalue("store_dir")
        url = f"sqlite+aiosqlite:///{data}/runs.db?timeout=1"  # a 1 s busy timeout, not 5
        return serve(
            workdir,
            llm_url=llm.url,
            database_url=url,
            db_path=data / "runs.db",
            preexec_fn=_without_dac_override(),
        )

    @contextlib.contextmanager
    def _run_under_way(
        self, service: Service, llm: FakeLLM, **fields: Any
    ) -> Iterator[concurrent.futures.Future[Any]]:
        """A run started (its record created) and held at its first LLM call; it goes on when
        the block ends. The future is its response (its events when ``stream``)."""
        llm.arm()
        question = tagged("gated")
        with (
            concurrent.futures.ThreadPoolExecutor(1) as pool,
            service.new_client() as client,
        ):
            pending: concurrent.futures.Future[Any]
            if fields.pop("stream", False):
                pending = pool.submit(stream, client, question, **fields)
            else:
                pending = pool.submit(client.post, "/ask", json={"question": question, **fields})
            try:
                assert llm.gated.wait(10), "the run did not start"
                yield pending
            finally:
                llm.release()
                pending.result(timeout=30)

    def _refused(self, client: httpx2.Client, *words: str) -> None:
        """A run cannot be recorded now: 503, told it was not started (JSON and stream)."""
        for stream_mode in (False, True):
            response = client.post("/ask", json={"question": QUESTION, "stream": stream_mode})
            body = problem(response, 503, "the run store is unavailable", *words)
            assert body["detail"].endswith("the run was not started")
            assert response.headers["retry-after"] == "5"
        assert client.get("/healthz").status_code == 200

    def _told_not_stored(self, body: dict[str, Any], *words: str) -> None:
        assert (body["status"], body["answer"]) == ("finished", ANSWER)  # the answer is kept
        assert body["stored"] is False
        assert body["store_error"].startswith("the run could not be stored")
        for word in words:
            assert word in body["store_error"], body

    def test_a_locked_store(self, service: Service, llm: FakeLLM) -> None:
        lock = sqlite3.connect(service.db_path, isolation_level=None)
        with service.new_client() as client:
            try:
                with self._run_under_way(service, llm) as pending:
                    lock.execute("BEGIN EXCLUSIVE")
                response = pending.result(timeout=30)
                assert response.status_code == 200, response.text
                body = response.json()
                self._told_not_stored(body, "database is locked")
                # Reading is refused too, with a 503 rather than a 500.
                problem(client.get(f"/runs/{body['run_id']}"), 503, "database is locked")
                self._refused(client, "database is locked")
            finally:
                lock.rollback()
                lock.close()
            # The run's start was recorded, its end could not be (and the client was told).
            assert stored(client, body["run_id"])["status"] == "running"
            healthy(client)
        no_unhandled_errors(service)

    def test_a_read_only_store(self, service: Service, llm: FakeLLM) -> None:
        if _bypasses_permissions(service.pid):
            pytest.skip("the server may write whatever the permission bits say")
        data = service.db_path.parent
        modes = {path: path.stat().st_mode for path in (data, service.db_path)}
        with service.new_client() as client:
            try:
                with self._run_under_way(service, llm) as pending:
                    service.db_path.chmod(0o444)
                    data.chmod(0o555)  # no journal can be created next to it either
                response = pending.result(timeout=30)
                assert response.status_code == 200, response.text
                body = response.json()
                self._told_not_stored(body, "readonly database")
                self._refused(client, "readonly database")
                assert stored(client, body["run_id"])["status"] == "running"  # reads work
            finally:
                for path, mode in modes.items():
                    path.chmod(mode)
            healthy(client)
        no_unhandled_errors(service)

    def test_a_store_past_its_file_size_limit(self, service: Service, llm: FakeLLM) -> None:
        """RLIMIT_FSIZE set on the running server: every write past 0 bytes fails (EFBIG).
        Streamed, so the final event is the one that tells."""
        limit = resource.prlimit(service.pid, resource.RLIMIT_FSIZE)
        with service.new_client() as client:
            try:
                with self._run_under_way(service, llm, stream=True) as pending:
                    resource.prlimit(service.pid, resource.RLIMIT_FSIZE, (0, limit[1]))
                events = pending.result(timeout=30)
                assert events[-1][0] == "final", events
                final = events[-1][1]
                self._told_not_stored(final, "disk I/O error")  # how SQLite reports EFBIG
                self._refused(client, "disk I/O error")
            finally:
                resource.prlimit(service.pid, resource.RLIMIT_FSIZE, limit)
            assert stored(client, final["run_id"])["status"] == "running"
            healthy(client)
        no_unhandled_errors(service)

    def test_a_full_disk(
        self, service: Service, llm: FakeLLM, store_dir: tuple[Path, bool]
    ) -> None:
        """The store on a 512 KiB tmpfs that another file fills up (ENOSPC)."""
        if not store_dir[1]:
            pytest.skip("a small tmpfs cannot be mounted here (root only)")
        filler = store_dir[0] / "filler"
        with service.new_client() as client:
            try:
                with self._run_under_way(service, llm) as pending:
                    _fill(filler)
                response = pending.result(timeout=30)
                assert response.status_code == 200, response.text
                body = response.json()
                self._told_not_stored(body, "database or disk is full")
                self._refused(client, "database or disk is full")
            finally:
                filler.unlink(missing_ok=True)
            assert stored(client, body["run_id"])["status"] == "running"
            healthy(client)
        no_unhandled_errors(service)


def _fill(path: Path) -> None:
    """Write to ``path`` until its file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
