"""``python -m service`` as a real uvicorn server on a loopback port, over real HTTP, with an
OpenAI-compatible fake served over real HTTP too."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.live import FakeLLM, json_lines, serve


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:  # python on the first step, finish on the second
        yield fake


def test_real_server_answers_over_http(llm: FakeLLM, tmp_path: Path) -> None:
    with serve(tmp_path, llm_url=llm.url) as server:
        client = server.client
        response = client.post("/ask", json={"question": "What is 1234 * 5678?"})
        assert response.status_code == 200, response.text
        assert response.json()["answer"] == "7006652"
        assert response.json()["steps"][0]["observation"].strip() == "7006652"
        assert client.get("/readyz").status_code == 200
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit code tells why.
    assert server.returncode in (0, -signal.SIGTERM)


def test_log_json_puts_every_line_in_json_with_request_and_run_ids(
    llm: FakeLLM, tmp_path: Path
) -> None:
    with serve(tmp_path, llm_url=llm.url, LOG_JSON="true") as server:
        client = server.client
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
        for probe in ("/healthz", "/readyz"):  # HEAD where GET is (pass EY: 405)
            head, get = client.head(probe), client.get(probe)
            assert head.status_code == 200 and head.content == b"", (probe, head)
            for field in ("content-type", "content-length"):  # GET's (pass FA)
                assert head.headers.get(field) == get.headers[field], (probe, field)
    records = json_lines(server.output)
    assert records, "the server logged nothing"
    assert any(r.get("logger", "").startswith("uvicorn") for r in records), records
    of_request = [r for r in records if r.get("request_id") == "req-42"]
    # The access line is uvicorn's, not ours: it carries the ids only through the context.
    access = [r for r in of_request if r.get("logger") == "uvicorn.access"]
    assert access, records
    assert all(r.get("run_id") == run_id for r in access), access
