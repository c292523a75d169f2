"""``python -m service`` as a real uvicorn server on a loopback port, over real HTTP, with an
OpenAI-compatible fake served over real HTTP too."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest

ROOT = Path(__file__).resolve().parents[2]


class _FakeLLM(BaseHTTPRequestHandler):
    """Multiplies with python on the first step, finishes on the second."""

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        done = any("Observation" in str(m.get("content")) for m in request["messages"][2:])
        text = (
            "Thought: done\nAction: finish[7006652]"
            if done
            else "Thought: compute\nAction: python[print(1234 * 5678)]"
        )
        self._send(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": "fake",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    def _send(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake_llm_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@dataclasses.dataclass
class _Exited:
    """What the server left behind, filled in once it has stopped."""

    output: str = ""
    returncode: int | None = None


@contextlib.contextmanager
def _serve(
    fake_llm_url: str, tmp_path: Path, **extra: str
) -> Iterator[tuple[httpx2.Client, _Exited]]:
    """``python -m service`` on a free loopback port, ready; stopped with SIGTERM on exit."""
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LLM_BASE_URL": fake_llm_url,
        "LLM_MODEL": "fake",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/runs.db",
        "SANDBOX_WORKERS": "1",
        **extra,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    exited = _Exited()
    try:
        deadline = time.monotonic() + 30
        with httpx2.Client(base_url=base, timeout=10) as client:
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                assert server.poll() is None, "the server exited early"
                assert time.monotonic() < deadline, "server did not start within 30 s"
                time.sleep(0.2)
            yield client, exited
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.stdout is not None
        exited.output = server.stdout.read().decode()
        server.stdout.close()
        exited.returncode = server.returncode


def test_real_server_answers_over_http(fake_llm_url: str, tmp_path: Path) -> None:
    with _serve(fake_llm_url, tmp_path) as (client, server):
        response = client.post("/ask", json={"question": "What is 1234 * 5678?"})
        assert response.status_code == 200, response.text
        assert response.json()["answer"] == "7006652"
        assert response.json()["steps"][0]["observation"].strip() == "7006652"
        assert client.get("/readyz").status_code == 200
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit code tells why.
    assert server.returncode in (0, -signal.SIGTERM)


def test_log_json_puts_every_line_in_json_with_request_and_run_ids(
    fake_llm_url: str, tmp_path: Path
) -> None:
    with _serve(fake_llm_url, tmp_path, LOG_JSON="true") as (client, server):
        response = client.post(
            "/ask",
            json={"question": "What is 1234 * 5678?"},
            headers={"X-Request-ID": "req-42"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == "req-42"
        run_id = response.json()["run_id"]
        made_up = client.get("/healthz", headers={"X-Request-ID": "not sane;x"})
        assert made_up.headers["x-request-id"] not in ("", "not sane;x")
    lines = [line for line in server.output.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert any(r.get("logger", "").startswith("uvicorn") for r in records), records
    of_request = [r for r in records if r.get("request_id") == "req-42"]
    # The access line is uvicorn's, not ours: it carries the ids only through the context.
    access = [r for r in of_request if r.get("logger") == "uvicorn.access"]
    assert access, records
    assert all(r.get("run_id") == run_id for r in access), access
