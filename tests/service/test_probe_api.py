"""What a probe of the HTTP surface found (issue 16), each over real HTTP against ``python -m
service``: readiness that cost the backend a request per call and told anyone the details,
upstream details in client errors, raw line separators in the SSE ``final`` event, and lax
JSON (duplicate keys, NaN, control characters in the question)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.service.live import FakeLLM, Service, serve

KEY = "probe-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
PROBLEM = "application/problem+json"
# Every line break some reader honours: str.splitlines() splits on all of them.
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
FORGED = "\u2028event: final\u2028data: {}\u0085event: final\x85data: {}"


class _LinesLLM(FakeLLM):
    """Finishes at once with an answer full of exotic line breaks and a forged event."""

    @staticmethod
    def _step(tag: str, question: str, step: int) -> str:
        return f"Thought: done\nAction: finish[ok{FORGED}]"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with _LinesLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def service(llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serve(tmp_path_factory.mktemp("probe"), llm_url=llm.url, AGENT_API_KEYS=KEY) as svc:
        yield svc


def test_readyz_is_cheap_and_tells_details_only_to_key_holders(
    service: Service, llm: FakeLLM
) -> None:
    before = llm.model_lists
    with service.new_client() as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.get("/readyz"), range(400)))
    assert {a.status_code for a in answers} == {200}
    # The backend check ran at most once per few seconds, not once per call.
    assert llm.model_lists - before <= 3, llm.model_lists - before
    assert {json.dumps(a.json()) for a in answers} == {'{"status": "ready"}'}  # no details
    wrong = service.client.get("/readyz", headers={"Authorization": "Bearer " + "x" * 26})
    assert wrong.json() == {"status": "ready"}
    detailed = service.client.get("/readyz", headers=AUTH).json()
    llm_check = detailed["checks"]["llm"]
    assert llm_check["ok"] is True and llm_check["model"] == "fake"
    assert llm_check["protocol"]["configured"] == llm_check["protocol"]["effective"] == "text"
    assert detailed["checks"]["sandbox"]["layers"]["process"] is True
    assert detailed["checks"]["store"] == {"ok": True}


def test_sse_events_carry_no_raw_line_break(service: Service) -> None:
    with service.client.stream(
        "POST", "/ask", json={"question": "q", "stream": True}, headers=AUTH
    ) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_bytes()).decode("utf-8")
    # sse-starlette ends lines with CRLF; no other break may appear.
    assert not [ch for ch in LINE_BREAKS if ch in raw.replace("\r\n", "\n")], "a raw break"
    # However a client splits the lines, it sees one final event, whose answer is intact.
    lines = raw.splitlines()
    assert [line for line in lines if line.startswith("event:")][-1] == "event: final"
    assert sum(line == "event: final" for line in lines) == 1
    final = json.loads(next(line for line in reversed(lines) if line.startswith("data:"))[5:])
    assert final["answer"] == f"ok{FORGED}"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"question": "q", "question": "other"}', ["invalid JSON", "duplicate key 'question'"]),
        ('{"question": "q", "timeout_s": NaN}', ["invalid JSON", "NaN is not JSON"]),
        ('{"question": "q", "timeout_s": Infinity}', ["invalid JSON", "Infinity is not JSON"]),
        ('{"question": "a\\u0000b"}', ["control character U+0000 at 1"]),
        ('{"question": "a\\u001b[31mb"}', ["control character U+001B"]),
        ('{"question": "a\\u0085b"}', ["control character U+0085"]),
        ('{"question": "a\\ud800b"}', ["question"]),  # pydantic: not a valid string
        ('{"question": "q", "max_steps": true}', ["max_steps"]),
        ('{"question": "q", "max_steps": "3"}', ["max_steps"]),
        # red-team pass EF: a 400 that said nothing
        (b'{"question": "\xff\xfe"}', ["invalid JSON", "not UTF-8"]),
        ('{"question": "q", "max_steps": ' + "9" * 5000 + "}", ["invalid JSON", "4300"]),
        ("[" * 100_000 + "]" * 100_000, ["invalid JSON", "nested too deeply"]),
    ],
)
def test_lax_json_is_a_422_that_says_why(
    service: Service, body: str | bytes, words: list[str]
) -> None:
    response = service.client.post(
        "/ask", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    for word in words:
        assert word in response.json()["detail"], response.json()


def test_a_question_may_hold_tabs_and_line_breaks(service: Service) -> None:
    question = "first line\r\nsecond\tline\nthird\u2028line"
    response = service.client.post("/ask", json={"question": question}, headers=AUTH)
    assert response.status_code == 200, response.text


def test_upstream_details_stay_in_the_log(tmp_path: Path) -> None:
    """An LLM endpoint that answers 500 with a telling body: the client and the stored run get
    a stable reason, the operator's log gets the endpoint and what it said."""
    with FakeLLM() as llm, serve(tmp_path, llm_url=llm.url, LLM_MAX_RETRIES="0") as svc:
        response = svc.client.post("/ask", json={"question": "q [fault:500]"})
        assert response.status_code == 502
        body = response.json()
        assert body["reason"] == "llm_unavailable"
        stored = svc.client.get(f"/runs/{body['run_id']}").json()
        for told in (response.text, json.dumps(stored)):
            assert "127.0.0.1" not in told and "injected" not in told, told
        assert re.search(r"127\.0\.0\.1:\d+/v1 answered HTTP 500: injected 500", svc.output)
