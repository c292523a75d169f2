"""Real processes and real sockets for end-to-end tests.

- ``serve(...)``: ``python -m service`` as a real uvicorn on a free loopback port, ready when
  ``/healthz`` answers; stopped with SIGTERM (then SIGKILL) on exit, its output kept.
- ``FakeLLM``: an OpenAI-compatible server (a ``ThreadingHTTPServer``) whose behaviour is chosen
  per request by a tag in the question, ``"... [fault:<tag>]"``, so that one server can play
  every fault, concurrently, without shared script state (see ``FakeLLM`` for the tags).
- ``FakeSearxng``: a SearxNG-like ``GET /search?q=...&format=json`` whose ``mode`` the test
  sets (``ok``, ``429``, ``429-retry-after``, ``500``, ``hang``, ``html``), and which can be
  stopped and started again on the same port (stopped: connection refused).
- ``descendants(pid)`` / ``cpu_ticks(pid)``: the process tree from ``/proc``, to find a
  sandbox run's child by the CPU it burns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx2

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is 1234 * 5678?"
ANSWER = "7006652"
# A program that only a kill ends (programs cannot import time or os).
SPIN = "n = 0\nwhile True:\n    n += 1\n"
# What the ``pal`` tag answers: a PAL program, with markup in it that a page must show as text.
PAL_TAG = "[fault:pal]"
PAL_PROGRAM = 'def solution():\n    """<b>1234</b> * 5678"""\n    return 1234 * 5678\n'
_TAG = re.compile(r"\[fault:([a-z0-9-]+)\]")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the service ------------------------------------------------------------------------------


@dataclasses.dataclass
class Service:
    """A running ``python -m service``; ``returncode`` is filled in at exit."""

    process: subprocess.Popen[bytes]
    base_url: str
    client: httpx2.Client
    db_path: Path
    chunks: list[bytes] = dataclasses.field(default_factory=list)
    returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        """Everything the server has logged so far."""
        return b"".join(list(self.chunks)).decode(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def new_client(self, timeout_s: float = 30.0) -> httpx2.Client:
        """A client with connections of its own (one keep-alive connection, reused)."""
        return httpx2.Client(base_url=self.base_url, timeout=timeout_s)


@contextlib.contextmanager
def serve(
    workdir: Path,
    *,
    llm_url: str,
    database_url: str | None = None,
    db_path: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    start_timeout_s: float = 30.0,
    **extra: str,
) -> Iterator[Service]:
    """``python -m service`` on a free loopback port, in ``workdir``, ready to use."""
    port = free_port()
    db_path = db_path or workdir / "runs.db"  # where database_url puts it, when given
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LLM_BASE_URL": llm_url,
        "LLM_MODEL": "fake",
        "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{db_path}",
        "SANDBOX_WORKERS": "1",
        "RATE_LIMIT": "",
        "WORKERS": "1",
        "SHUTDOWN_GRACE_S": "1",
        "AGENT_PROTOCOL": "text",  # scripted replies are text steps
        **extra,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn,
    )
    base = f"http://127.0.0.1:{port}"
    # The output is drained all along, so a chatty server never blocks on a full pipe.
    stdout = process.stdout
    assert stdout is not None
    client = httpx2.Client(base_url=base, timeout=30)
    service = Service(process, base, client, db_path)
    reader = threading.Thread(
        target=lambda: service.chunks.extend(iter(lambda: os.read(stdout.fileno(), 65536), b"")),
        daemon=True,
    )
    reader.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None:
                reader.join(5)
                raise AssertionError(f"the server exited early:\n{service.output}")
            assert time.monotonic() < deadline, f"server did not start in {start_timeout_s} s"
            time.sleep(0.1)
        yield service
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)
        stdout.close()
        service.returncode = process.returncode


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every non-blank line of a server's output, parsed; fails the test on one that is not
    JSON (``LOG_JSON=true`` promises JSON on every line)."""
    records = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return records


class _QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive (HTTP/1.1), and no line on stderr per request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        return


# -- the fake LLM -----------------------------------------------------------------------------


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


@dataclasses.dataclass(frozen=True)
class LLMCall:
    tag: str
    question: str
    step: int  # how many steps the conversation had already taken
    at: float  # time.monotonic()


class FakeLLM:
    """An OpenAI-compatible server; the tag in a question picks what its calls get.

    Every tag answers a normal conversation unless it says otherwise: step 0 runs
    ``print(1234 * 5678)`` with python, step 1 finishes with ``7006652``.

    ``429``             every call: 429, no Retry-After
    ``429-retry-after`` every call: 429 with ``Retry-After: 1``
    ``429-once``        the first call of each question: 429 with ``Retry-After: 1``
    ``429-long``        every call: 429 with ``Retry-After: 3600`` (only a deadline ends it)
    ``500``             every call: 500 with an OpenAI-style error body
    ``hang``            every call: never answers (until the fake stops)
    ``html``            200, ``text/html``, not JSON
    ``bad-json``        200, ``application/json``, a body that is not JSON
    ``wrong-shape``     200, valid JSON that is not a chat completion (no ``choices``)
    ``wrong-choice``    200, a completion whose choice has no ``message``
    ``truncated``       200 headers announcing more body than is sent; the connection closes
    ``reset``           the connection closes before any response
    ``gated``           step 0 waits until ``release()`` (a run held in progress)
    ``spin``            step 0 runs a program that never ends (``SPIN``)
    ``search``          step 0 searches the question's text; step 1 finishes with ``searched``
    ``invent``          every call: an action name never written before (``invented_<n>``)
    ``pal``             every call: ``PAL_PROGRAM``; the tag is seen in a PAL prompt's question too
    ``cite``            from step 1 (a run that names collections retrieves at step 1 by itself):
                        finishes with ``7006652 [1]``, citing the first passage
    """

    def __init__(self) -> None:
        self.calls: list[LLMCall] = []
        self.model_lists = 0  # GET /models calls (readiness checks)
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self.stopping = threading.Event()
        self.gate = threading.Event()
        self.gated = threading.Event()  # set when a gated call is waiting
        fake = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                with fake._lock:
                    fake.model_lists += 1
                with contextlib.suppress(OSError):
                    self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                with contextlib.suppress(OSError):  # the service may hang up first
                    body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                    fake._answer(self, body)

            def _json(
                self, status: int, body: object, headers: dict[str, str] | None = None
            ) -> None:
                self.raw(status, json.dumps(body).encode(), "application/json", headers)

            def raw(
                self,
                status: int,
                data: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
                length: int | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data) if length is None else length))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def arm(self) -> None:
        """The next ``gated`` call waits for ``release()``; ``gated`` is set once it does."""
        self.gate.clear()
        self.gated.clear()

    def release(self) -> None:
        self.gate.set()

    def calls_for(self, question: str) -> list[LLMCall]:
        with self._lock:
            return [c for c in self.calls if c.question == question]

    def _answer(self, handler: Any, body: dict[str, Any]) -> None:
        messages = body.get("messages", [])
        question = next(
            (
                str(m.get("content", ""))[len("Question: ") :]
                for m in messages
                if m.get("role") == "user" and str(m.get("content", "")).startswith("Question: ")
            ),
            "",
        )
        match = _TAG.search(question)
        tag = match.group(1) if match else "ok"
        # A PAL prompt asks "Q: ..." after its worked examples: only its last turn is the question.
        last = next((str(m.get("content")) for m in messages[::-1] if m.get("role") == "user"), "")
        if PAL_TAG in last:
            tag = "pal"
        step = sum(1 for m in messages if m.get("role") == "assistant")
        with self._lock:
            self.calls.append(LLMCall(tag, question, step, time.monotonic()))
            seen = self._seen[question] = self._seen.get(question, 0) + 1
            number = len(self.calls)  # unique to this call, whatever the question
        error = {"error": {"message": f"injected {tag}", "type": "server_error"}}
        if tag in ("429", "429-retry-after", "429-long") or (tag == "429-once" and seen == 1):
            after = {"429": None, "429-long": "3600"}.get(tag, "1")
            handler._json(429, error, {"retry-after": after} if after else None)
        elif tag == "500":
            handler._json(500, error)
        elif tag == "hang":
            self.stopping.wait(60)
        elif tag == "html":
            handler.raw(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif tag == "bad-json":
            handler.raw(200, b'{"choices": [{"message": ', "application/json")
        elif tag == "wrong-shape":
            handler._json(200, {"result": ANSWER, "status": "ok"})
        elif tag == "wrong-choice":
            handler._json(200, {**_completion(""), "choices": [{"index": 0, "text": ANSWER}]})
        elif tag == "truncated":
            data = json.dumps(_completion("Thought: compute\nAction: finish[1]")).encode()
            handler.raw(200, data[: len(data) // 2], "application/json", length=len(data))
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        elif tag == "invent":
            # Many calls: headers and body must not wait on Nagle and a delayed ACK (40 ms).
            handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            invented = f"Thought: try something new\nAction: invented_{number}[x]"
            handler._json(200, _completion(invented))
        elif tag == "reset":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        else:
            if tag == "gated" and step == 0:
                self.gated.set()
                self.gate.wait(60)
            handler._json(200, _completion(self._step(tag, question, step)))

    @staticmethod
    def _step(tag: str, question: str, step: int) -> str:
        if tag == "pal":  # PAL's prompt has worked examples: its step count is theirs
            return PAL_PROGRAM
        if (
            step >= 1 and tag == "cite"
        ):  # after the retrieve a run that names collections opens with
            return f"Thought: passage 1 says so\nAction: finish[{ANSWER} [1]]"
        if step >= 1:
            return f"Thought: done\nAction: finish[{'searched' if tag == 'search' else ANSWER}]"
        if tag == "spin":
            return f"Thought: compute\nAction: python[{SPIN}]"
        if tag == "search":
            return f"Thought: look it up\nAction: search[{_TAG.sub('', question).strip()}]"
        return "Thought: compute\nAction: python[print(1234 * 5678)]"


# -- the fake SearxNG -------------------------------------------------------------------------


class FakeSearxng:
    """``GET /search?q=...&format=json`` answering as ``mode`` says; ``stop()`` makes the port
    refuse connections, ``start()`` serves on it again."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.queries: list[str] = []
        self.probes = 0
        self.port = free_port()
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeSearxng:
        fake = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                with contextlib.suppress(OSError):
                    fake._answer(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSearxng:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.stop()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        query = parse_qs(url.query).get("q", [""])[0]
        if url.path == "/search":
            self.queries.append(query)
        else:
            self.probes += 1  # the service checking it can reach us (GET /)
        mode = self.mode
        headers: dict[str, str] = {}
        if mode == "hang":
            self.stopping.wait(60)
            return
        if mode.startswith("429"):
            status, body, ctype = 429, b"Too Many Requests", "text/plain"
            if mode == "429-retry-after":
                headers["retry-after"] = "1"
        elif mode == "500":
            status, body, ctype = 500, b"Internal Server Error", "text/plain"
        elif mode == "html":
            status, body, ctype = 200, b"<html>searx</html>", "text/html"
        else:
            results = [
                {
                    "title": f"About {query}",
                    "url": "https://example.org/a",
                    "content": f"{query}: Paris is the capital of France.",
                }
            ]
            status, ctype = 200, "application/json"
            body = json.dumps({"query": query, "results": results}).encode()
        handler.send_response(status)
        handler.send_header("content-type", ctype)
        handler.send_header("content-length", str(len(body)))
        # No keep-alive: once stopped, the fake must refuse the service's next search.
        handler.send_header("connection", "close")
        handler.close_connection = True
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


# -- processes --------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, utime + stime ticks) from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[11]) + int(fields[12])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from ``/proc`` (namespaced children included)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                parents[int(entry)] = stat[0]
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def cpu_ticks(pid: int) -> int:
    stat = _stat(pid)
    return stat[2] if stat else -1


def busy_descendant(pid: int, timeout_s: float = 10.0) -> int:
    """The process below ``pid`` that is burning CPU (a run's child in a loop)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = {p: cpu_ticks(p) for p in descendants(pid)}
        time.sleep(0.3)
        gained = {p: cpu_ticks(p) - t for p, t in before.items() if cpu_ticks(p) >= 0}
        busy = [p for p, g in gained.items() if g >= 10]  # >= 0.1 s of CPU in 0.3 s
        if busy:
            return max(busy, key=lambda p: gained[p])
    raise AssertionError("no sandbox child is running")
