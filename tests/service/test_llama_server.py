"""``make test-local``: the service against a real OpenAI-compatible server nobody here wrote,
llama-cpp-python's own ``llama_cpp.server``, serving the embedded model's GGUF (issue 12).

Without the embedded backend's grammar, the 0.5B model's text steps broke there (a SyntaxError,
then replies with no parsable action); and with ``AGENT_PROTOCOL=tools`` that server ignored the
tools and a prose reply passed for the answer. Here ``auto`` must find that the server enforces
JSON schemas in its own dialect (and no tool calls), and the ReAct question must finish with the
right number.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from agents.llm.model_files import DEFAULT_MODEL, get_spec
from agents.llm.openai_backend import OpenAILLM
from agents.protocol import ProtocolChoice, Resolved
from tests.service.live import free_port, serve

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(900)]  # a 0.5B model on 2 cores
QUESTION = "How many days are there between 1969-07-20 and 1989-11-09?"


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    cache = Path(os.environ.get("MODEL_CACHE_DIR") or "data/models")
    model = cache / get_spec(os.environ.get("LOCAL_MODEL") or DEFAULT_MODEL).filename
    assert model.is_file(), f"{model} is missing: run make model"
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx2.get(f"{url}/models", timeout=5).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert server.poll() is None, "llama_cpp.server exited"
            assert time.monotonic() < deadline, "llama_cpp.server did not start in 120 s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


async def test_the_probe_finds_llama_cpps_json_dialect_and_no_tool_calls(llama_server: str) -> None:
    llm = OpenAILLM(base_url=llama_server, timeout_s=300)
    try:
        caps = await llm.probe()
        assert caps.json_schema == "llama_cpp"  # it fails on OpenAI's json_schema dialect
        assert caps.tools is False  # its chat format has no function calling
        assert await ProtocolChoice(llm, "auto").resolve() == Resolved("json")
        tools = await ProtocolChoice(llm, "tools").resolve()
        assert tools.tools_ignored
    finally:
        await llm.aclose()


def test_react_with_auto_finishes_with_the_right_number(llama_server: str, tmp_path: Path) -> None:
    with serve(
        tmp_path,
        llm_url=llama_server,
        start_timeout_s=60,
        AGENT_PROTOCOL="auto",
        LLM_MODEL="",
        LLM_TIMEOUT_S="300",
        REQUEST_TIMEOUT_S="600",
        ALLOWED_ACTIONS="python,finish",
    ) as service:
        with service.new_client(timeout_s=900) as client:
            reply = client.post("/ask", json={"question": QUESTION})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        ready = service.client.get("/readyz").json()
    assert body["status"] == "finished", body
    assert body["answer"] == "7417", body
    assert any(step["action"] == "python" for step in body["steps"])  # computed, not recalled
    assert ready["checks"]["llm"]["protocol"]["effective"] == "json"
