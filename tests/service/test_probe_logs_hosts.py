"""Findings of the security probe (issue 16), over real HTTP against ``python -m service``.

- The access log never holds a query string (an ``?api_key=`` sent by mistake, or text shaped
  to forge a log line), in JSON and in plain mode, and a path cannot start a line of its own.
- No redirect is built from the ``Host`` header, and ``ALLOWED_HOSTS`` answers a foreign Host
  with a 400 problem document while the liveness probe stays reachable from any Host.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.live import FakeLLM, Service, json_lines, serve

KEY = "k" * 16
FORGED = '"}{"level":"critical","event":"forged'  # sent raw: h11 accepts quotes in a target
# Plain (ConsoleRenderer) lines start "<ISO timestamp> [<level>": anything else is forged.
PLAIN_LINE = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z? \[(debug|info|warning|error)\s*\] ")


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def raw_request(service: Service, target: str, host: str = "127.0.0.1") -> bytes:
    """One request sent byte for byte as written (no client-side quoting); the raw answer."""
    port = int(service.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def is_problem(response: Any, status: int) -> bool:
    content_type = response.headers.get("content-type", "")
    return bool(
        response.status_code == status
        and content_type.startswith("application/problem+json")
        and response.json()["status"] == status
    )


# -- 1. the access log ------------------------------------------------------------------------


@pytest.mark.parametrize("log_json", ["true", "false"])
def test_access_log_drops_query_strings_and_cannot_be_forged(
    llm: FakeLLM, tmp_path: Path, log_json: str
) -> None:
    with serve(tmp_path, llm_url=llm.url, LOG_JSON=log_json, AGENT_API_KEYS=KEY) as service:
        client = service.client
        forged = "/healthz?api_key=SECRET123&a=%22%7D%7B%22level%22%3A%22critical%22"
        assert client.get(forged).status_code == 200
        assert client.get("/runs/x?api_key=SECRET").status_code == 401
        assert raw_request(service, f"/healthz?{FORGED}").startswith(b"HTTP/1.1 200")
        # A decoded %0A in the path must not end the line, so the rest cannot pose as one.
        answer = raw_request(service, "/healthz%0A2030-01-01T00:00:00Z%20%5Berror%5D%20forged")
        assert answer.startswith(b"HTTP/1.1 404")
    output = service.output
    assert "SECRET" not in output
    assert "critical" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    if log_json == "true":
        records = json_lines(output)
        assert all(r.get("level") != "critical" for r in records)
        access = [r["event"] for r in records if r.get("logger") == "uvicorn.access"]
    else:
        assert all(PLAIN_LINE.match(line) for line in lines), output
        assert not any("forged" in line and "GET" not in line for line in lines), output
        access = [line for line in lines if "[uvicorn.access]" in line]
    # The access lines are still there: method, path without its query, status.
    assert sum('"GET /healthz HTTP/1.1" 200' in line for line in access) >= 3, access
    assert any('"GET /runs/x HTTP/1.1" 401' in line for line in access), access
    assert any('"GET /healthz%0A2030' in line and '" 404' in line for line in access), access


# -- 2. the Host header -----------------------------------------------------------------------


def test_trailing_slash_is_a_404_not_a_redirect_to_the_host_header(
    llm: FakeLLM, tmp_path: Path
) -> None:
    with serve(tmp_path, llm_url=llm.url) as service:
        for path in ("/runs/abc/", "/actions/", "/healthz/"):
            response = service.client.get(path, headers={"Host": "evil.example"})
            assert not 300 <= response.status_code < 400, (path, response.headers)
            assert "evil.example" not in response.headers.get("location", "")
            # without keys a foreign Host is refused first (LocalBrowserGuard); never redirected
            assert is_problem(response, 403), (path, response.status_code, response.text)
            here = service.client.get(path)
            assert is_problem(here, 404), (path, here.status_code, here.text)


def test_allowed_hosts_answers_a_foreign_host_with_a_400_problem(
    llm: FakeLLM, tmp_path: Path
) -> None:
    with serve(tmp_path, llm_url=llm.url, ALLOWED_HOSTS="localhost,127.0.0.1") as service:
        client = service.client
        port = service.base_url.rsplit(":", 1)[1]
        foreign = client.get("/actions", headers={"Host": "evil.example"})
        assert is_problem(foreign, 400), (foreign.status_code, foreign.text)
        assert "host" in foreign.json()["detail"].lower()
        assert foreign.headers.get("x-request-id")  # a problem like any other: traceable
        slash = client.get("/runs/abc/", headers={"Host": "evil.example"})
        assert is_problem(slash, 400), (slash.status_code, slash.text)
        malformed = raw_request(service, "/actions", host="localhost@evil.example")
        assert malformed.startswith(b"HTTP/1.1 400"), malformed[:200]
        assert b"application/problem+json" in malformed, malformed[:200]
        assert client.get("/actions").status_code == 200  # Host: 127.0.0.1:<port>
        assert client.get("/actions", headers={"Host": f"localhost:{port}"}).status_code == 200
        # Container and kubelet probes send their own Host (127.0.0.1, the pod's IP).
        probe = client.get("/healthz", headers={"Host": "10.1.2.3:8000"})
        assert probe.status_code == 200, probe.text
        ready = client.get("/readyz", headers={"Host": "10.1.2.3:8000"})  # the readiness probe
        assert ready.status_code in (200, 503) and "status" in ready.json(), ready.text


def test_without_keys_no_web_page_drives_the_server(llm: FakeLLM, tmp_path: Path) -> None:
    """Red-team pass CV: the quick start's server (no keys) answered any Host, so a page on
    any site read every run and ran programs through a name rebound to 127.0.0.1, and a
    cross-site form (no preflight) planted a document in a collection."""
    with serve(tmp_path, llm_url=llm.url) as service:
        client = service.client
        port = service.base_url.rsplit(":", 1)[1]
        rebound = {"Host": f"rebind.attacker.example:{port}"}
        for method, path in (("GET", "/runs"), ("POST", "/ask"), ("GET", "/ui")):
            response = client.request(method, path, headers=rebound, json={"question": "q"})
            assert is_problem(response, 403), (method, path, response.text)
            assert "ALLOWED_HOSTS" in response.json()["detail"]
        form = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        for headers in (form, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            planted = client.post("/threads", json={}, headers=headers)
            assert is_problem(planted, 403), (headers, planted.text)
            assert "another site" in planted.json()["detail"]
        # the same machine's pages, under any of its names, and clients that are no browser
        own = {"Origin": f"http://localhost:{port}", "Sec-Fetch-Site": "same-origin"}
        assert client.post("/threads", json={}, headers=own).status_code == 201
        assert client.post("/threads", json={}).status_code == 201
        local = {"Host": f"localhost:{port}"}
        assert client.get("/runs", headers=local).status_code == 200
        assert client.get("/runs", headers={**form, **local}).status_code == 200  # reads: CORS
        assert client.get("/healthz", headers=rebound).status_code == 200  # probes: any Host


def test_with_keys_the_keys_decide(llm: FakeLLM, tmp_path: Path) -> None:
    key = "k" * 24
    with serve(tmp_path, llm_url=llm.url, AGENT_API_KEYS=key) as service:
        headers = {
            "Host": "api.example.com",
            "Origin": "https://app.example.com",
            "Authorization": f"Bearer {key}",
        }
        assert service.client.post("/threads", json={}, headers=headers).status_code == 201


# -- 3. connections ----------------------------------------------------------------------------


def whole_answer(sock: socket.socket) -> bytes:
    """A /healthz answer, read until its body has come (headers and body may come apart)."""
    got = b""
    while b'{"status":"ok"}' not in got and (chunk := sock.recv(65536)):
        got += chunk
    return got


def test_a_request_s_headers_have_a_deadline_and_an_address_few_connections(
    llm: FakeLLM, tmp_path: Path
) -> None:
    """Red-team pass CV: uvicorn kept a connection whose headers never finished open for
    good, and 21,000 of them from one host took every descriptor: nobody was answered. A
    request's headers get HEADER_TIMEOUT_S (from the connection's start, and again after each
    response on it), and one address holds MAX_CONNECTIONS_PER_ADDRESS at once."""
    extra = {"HEADER_TIMEOUT_S": "1", "MAX_CONNECTIONS_PER_ADDRESS": "3"}
    with serve(tmp_path, llm_url=llm.url, **extra) as service, contextlib.ExitStack() as opened:
        port = int(service.base_url.rsplit(":", 1)[1])

        def connect() -> socket.socket:  # closed at the end, whatever fails on the way
            return opened.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))

        slow = connect()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server
        assert 0.8 < time.monotonic() - started < 4
        slow.close()
        # a kept-alive connection: after its first answer, the next headers are timed too
        kept = connect()
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert whole_answer(kept).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert kept.recv(1024) == b""
        kept.close()
        # a slow request that does finish in time is served
        timely = connect()
        timely.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.5)
        timely.sendall(b"Host: 127.0.0.1\r\n\r\n")
        assert whole_answer(timely).startswith(b"HTTP/1.1 200")
        timely.close()
        held = [connect() for _ in range(3)]
        time.sleep(0.2)
        extra_one = connect()
        try:  # past the address's three: closed at once (reset, or nothing more to read)
            extra_one.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert extra_one.recv(1024) == b""
        except ConnectionResetError:
            pass
        finally:
            extra_one.close()
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert service.client.get("/healthz").status_code == 200  # the places are given back
