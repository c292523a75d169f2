"""Two findings of the security probe (issue 16), over real HTTP: ``python -m service`` as a real
uvicorn on a loopback port, with the fake OpenAI-compatible LLM on a real socket.

- The model chooses no metric series. A model that writes 1,000 action names of its own makes
  one ``refused`` series of ``reactpal_actions_total``, not 1,000: every label of every metric
  takes its values from a fixed set written in the code.
- Failed authentication is throttled per client address. After ``AUTH_FAILURE_LIMIT`` wrong or
  missing keys, the address gets 429 with ``Retry-After``, even with the right key (a block
  that let the right key through would not slow a guesser down at all), until the window has
  passed; other addresses, and ``/healthz``, are not affected. ``/metrics`` counts both.
- A request with a body and no key is refused on its headers, before its body is read.
"""

from __future__ import annotations

import concurrent.futures
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from service.auth import FailedAuthThrottle
from service.metrics import Metrics
from service.schemas import AskResponse, Step, Usage
from tests.service.live import QUESTION, FakeLLM, Service, serve

KEY = "probe-key-0123456789abcdef"
RIGHT = {"authorization": f"Bearer {KEY}"}
WRONG = {"authorization": "Bearer " + "w" * 24}
PROBLEM = "application/problem+json"
INVENTED = 1_000
STEPS_PER_RUN = 3  # a run ends after three refused actions in a row (RunPolicy)
# Every value each label may take: from the code, never from a request or the model.
CLOSED_LABELS = {
    "action": {"python", "search", "retrieve", "finish", "refused", "(unparsed)"},
    "mode": {"react", "pal"},
    "status": {"finished", "max_steps", "timeout", "error"},
    "kind": {"prompt", "completion"},
    "reason": {"too_long", "action_not_allowed", "missing", "wrong"},
}
_SAMPLE = re.compile(r"^(reactpal_\w+)\{([^}]*)\} ", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def series(metrics: str) -> list[tuple[str, dict[str, str]]]:
    """Each labelled ``reactpal_*`` sample: its name and labels (a histogram's ``le`` aside)."""
    found = []
    for name, labels in _SAMPLE.findall(metrics):
        values = {k: v for k, v in _LABEL.findall(labels) if k != "le"}
        found.append((name, values))
    return found


def value(metrics: str, sample: str) -> float:
    """The value of one sample, e.g. ``reactpal_auth_throttled_total``; 0 when absent."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def ask_all(service: Service, questions: list[str]) -> list[dict[str, Any]]:
    """``POST /ask`` for each question, four at a time, each worker on its own connection."""

    def worker(share: list[str]) -> list[dict[str, Any]]:
        with service.new_client() as client:
            answers = []
            for question in share:
                response = client.post("/ask", json={"question": question})
                assert response.status_code == 200, response.text
                answers.append(response.json())
            return answers

    shares = [questions[i::4] for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return [body for answers in pool.map(worker, shares) for body in answers]


def test_invented_action_names_make_no_metric_series(llm: FakeLLM, tmp_path: Path) -> None:
    runs = -(-INVENTED // STEPS_PER_RUN)
    questions = [f"{QUESTION} #{n} [fault:invent]" for n in range(runs)]
    with serve(tmp_path, llm_url=llm.url) as service:
        bodies = ask_all(service, questions)
        written = [str(step["action"]) for body in bodies for step in body["steps"]]
        assert len(set(written)) >= INVENTED
        assert all(name.startswith("invented_") for name in written)
        metrics = service.client.get("/metrics").text
    assert "invented_" not in metrics
    actions = {labels["action"] for name, labels in series(metrics) if "action" in labels}
    assert actions == CLOSED_LABELS["action"]  # every known action, at 0 until taken
    assert value(metrics, 'reactpal_actions_total{action="refused"}') == len(written)
    for name, labels in series(metrics):
        for label, given in labels.items():
            assert given in CLOSED_LABELS[label], (name, label, given)
    assert len(series(metrics)) < 100


def test_configured_tools_are_action_labels_and_other_names_are_refused() -> None:
    """An operator's tool (``EXTRA_TOOLS``) counts by its name; a builtin the service was not
    built with counts as ``refused`` like any invented name."""
    metrics = Metrics(actions=["python", "wiki_lookup"])
    written = ["wiki_lookup", "WIKI_LOOKUP", "search", "rm_rf", None, "finish"]
    steps = [Step(action=action) for action in written]
    run = AskResponse(
        run_id="0", status="finished", answer="x", steps=steps, usage=Usage(), duration_ms=1.0
    )
    metrics.observe_run("react", run)
    text = metrics.render().decode()
    counted = {
        labels["action"]: value(text, f'reactpal_actions_total{{action="{labels["action"]}"}}')
        for name, labels in series(text)
        if name == "reactpal_actions_total"
    }
    assert counted == {
        "finish": 1,
        "python": 0,
        "wiki_lookup": 2,
        "refused": 2,
        "(unparsed)": 1,
    }


def blocked(response: httpx2.Response, window_s: int) -> None:
    """A 429 problem document saying when to try again, within the window."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 429 and "failed API-key attempts" in body["detail"], body
    assert 1 <= int(response.headers["retry-after"]) <= window_s


def test_failed_authentication_is_throttled_per_address(llm: FakeLLM, tmp_path: Path) -> None:
    limit = 5
    extra = {"AGENT_API_KEYS": KEY, "AUTH_FAILURE_LIMIT": f"{limit}/minute"}
    with serve(tmp_path, llm_url=llm.url, **extra) as service:
        here = service.client  # from 127.0.0.1
        elsewhere = httpx2.Client(
            base_url=service.base_url,
            transport=httpx2.HTTPTransport(local_address="127.0.0.2"),
            timeout=30,
        )
        with elsewhere:
            assert here.get("/actions", headers=RIGHT).status_code == 200  # not a failure
            assert here.get("/actions").status_code == 401  # no key at all
            for _ in range(limit - 1):
                assert here.get("/actions", headers=WRONG).status_code == 401
            # The address is blocked now: wrong keys, and the right one, wherever they go.
            started = time.monotonic()
            burst = [here.get("/actions", headers=WRONG) for _ in range(200)]
            assert {r.status_code for r in burst} == {429}, "a wrong key was still checked"
            assert time.monotonic() - started < 20
            blocked(burst[-1], 60)
            blocked(here.get("/actions", headers=RIGHT), 60)
            blocked(here.post("/ask", headers=RIGHT, json={"question": QUESTION}), 60)
            assert here.get("/healthz").status_code == 200  # liveness needs no key
            # Another address with the right key is not locked out by this one's failures.
            assert elsewhere.get("/actions", headers=RIGHT).status_code == 200
            metrics = elsewhere.get("/metrics", headers=RIGHT).text
    assert value(metrics, 'reactpal_auth_failures_total{reason="missing"}') == 1
    assert value(metrics, 'reactpal_auth_failures_total{reason="wrong"}') == limit - 1
    assert value(metrics, "reactpal_auth_throttled_total") == len(burst) + 2


def test_the_block_ends_with_the_window(llm: FakeLLM, tmp_path: Path) -> None:
    """Failures count within the window only: once it has passed, the address is let in."""
    extra = {"AGENT_API_KEYS": KEY, "AUTH_FAILURE_LIMIT": "2 per 2 seconds"}
    with serve(tmp_path, llm_url=llm.url, **extra) as service:
        client = service.client
        codes = [client.get("/actions", headers=WRONG).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        retry = int(client.get("/actions", headers=RIGHT).headers["retry-after"])
        assert 1 <= retry <= 2
        time.sleep(retry + 0.2)
        assert client.get("/actions", headers=RIGHT).status_code == 200


@pytest.mark.parametrize(
    ("failing", "same", "other"),
    [
        ("2001:db8:0:7::1", "2001:db8:0:7:ffff::2", "2001:db8:0:8::1"),  # one /64, not the next
        ("::ffff:192.0.2.1", "192.0.2.1", "192.0.2.2"),  # IPv4-mapped is the IPv4 client
        ("192.0.2.1", "192.0.2.1", "192.0.2.2"),
    ],
)
def test_an_ipv6_client_is_counted_by_its_64(failing: str, same: str, other: str) -> None:
    """A subscriber with a /64 cannot take a fresh address for every guess."""
    throttle = FailedAuthThrottle("2/minute")
    for _ in range(2):
        throttle.failed(failing)
    assert throttle.blocked_for(same) is not None
    assert throttle.blocked_for(other) is None


def test_a_trusted_proxy_names_the_client(llm: FakeLLM, tmp_path: Path) -> None:
    """Behind a proxy every request comes from its address: with ``FORWARDED_ALLOW_IPS``
    naming it, the address counted is the client's, from ``X-Forwarded-For`` (red-team pass
    X: twenty wrong keys through an Ingress blocked every tenant); a peer it does not name
    is counted by its own address whatever header it writes."""
    extra = {
        "AGENT_API_KEYS": KEY,
        "AUTH_FAILURE_LIMIT": "3/minute",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    with serve(tmp_path, llm_url=llm.url, **extra) as service:
        proxy = service.client  # from 127.0.0.1, the trusted proxy
        guesser = {"x-forwarded-for": "203.0.113.7"}
        tenant = {"x-forwarded-for": "198.51.100.9"}
        for _ in range(3):
            assert proxy.get("/actions", headers=WRONG | guesser).status_code == 401
        blocked(proxy.get("/actions", headers=RIGHT | guesser), 60)
        assert proxy.get("/actions", headers=RIGHT | tenant).status_code == 200
        untrusted = httpx2.Client(
            base_url=service.base_url,
            transport=httpx2.HTTPTransport(local_address="127.0.0.2"),
            timeout=30,
        )
        with untrusted:  # its header is its own text: a fresh one for each try gains nothing
            for n in range(3):
                spoofed = {"x-forwarded-for": f"192.0.2.{n}"}
                assert untrusted.get("/actions", headers=WRONG | spoofed).status_code == 401
            blocked(untrusted.get("/actions", headers=RIGHT | tenant), 60)
        assert proxy.get("/actions", headers=RIGHT | tenant).status_code == 200


def test_without_keys_an_ipv6_client_is_limited_by_its_64(llm: FakeLLM, tmp_path: Path) -> None:
    """Red-team pass DB: without keys every limit counted a full address, so eight
    addresses of one IPv6 /64 took every run slot of the service (31 of 32 of another
    client's requests refused). A /64 is one client now, for the rate limit too."""
    extra = {"RATE_LIMIT": "2/minute", "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with serve(tmp_path, llm_url=llm.url, **extra) as service:
        proxy = service.client

        def make_thread(address: str) -> int:
            headers = {"x-forwarded-for": address}
            return proxy.post("/threads", json={}, headers=headers).status_code

        assert [make_thread(f"2001:db8:0:7::{n}") for n in (1, 2)] == [201, 201]
        assert make_thread("2001:db8:0:7:ffff::3") == 429  # the same /64
        assert make_thread("2001:db8:0:8::1") == 201  # the next one


def test_a_request_without_the_key_is_refused_before_its_body_is_read(
    llm: FakeLLM, tmp_path: Path
) -> None:
    """Who may not ask is refused on its headers: a body nobody may send is never parsed
    (a malformed one is a 401, not a 422) nor waited for (a body that never comes is a
    401 at once, not a 408 after BODY_TIMEOUT_S)."""
    with serve(tmp_path, llm_url=llm.url, AGENT_API_KEYS=KEY, BODY_TIMEOUT_S="30") as service:
        client = service.client
        for path in ("/ask", "/v1/chat/completions", "/collections"):
            assert client.post(path, content=b"{not json", headers=WRONG).status_code == 401
            assert client.post(path, content=b"{not json").status_code == 401
        address = httpx2.URL(service.base_url)
        with socket.create_connection((address.host, address.port or 80), timeout=10) as raw:
            raw.sendall(
                b"POST /ask HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 1000\r\n\r\n{"
            )
            started = time.monotonic()
            head = raw.recv(4096)
            assert head.startswith(b"HTTP/1.1 401"), head[:80]
            assert time.monotonic() - started < 5
        assert client.post("/ask", content=b"{not json", headers=RIGHT).status_code == 422
