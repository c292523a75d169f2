"""The README's examples, run as a newcomer would run them: the Python client against a real
server (``python -m service`` on loopback, with API keys, and a scripted model server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.live import FakeLLM, Service, serve

README = Path(__file__).parents[2] / "README.md"
KEY = "readme-example-key-0123456789"


def example(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    block = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert block, f"no python example after {heading!r}"
    return block.group(1)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with (
        FakeLLM() as llm,
        serve(tmp_path_factory.mktemp("readme"), llm_url=llm.url, AGENT_API_KEYS=KEY) as running,
    ):
        yield running


def run_example(
    service: Service, key: str, heading: str = "### From Python"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REACTPAL_URL": service.base_url, "REACTPAL_KEY": key}
    return subprocess.run(
        [sys.executable, "-c", example(heading)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_python_client_gets_the_answer_and_the_steps(service: Service) -> None:
    done = run_example(service, KEY)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "finished 7006652 (2 steps)", done.stdout
    names = [line.split(":", 1)[0] for line in lines[1:]]
    assert names[0] == "run" and "action" in names and "observation" in names, names
    assert lines[-1] == "answer: 7006652"


def test_the_python_client_says_what_went_wrong(service: Service) -> None:
    done = run_example(service, "not-the-key-0123456789")
    assert done.returncode == 1
    assert done.stderr.startswith("401: "), done.stderr


def test_the_mcp_client_example_calls_the_agent(service: Service) -> None:
    done = run_example(service, KEY, "### From an MCP client")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['ask', 'pal', 'python']", "7006652 finished"]


def test_the_openai_sdk_example_gets_the_answer_the_run_and_the_steps(service: Service) -> None:
    done = run_example(service, KEY, "### From any OpenAI client")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["7006652", "finished"], done.stdout
    assert "python" in done.stdout and done.stdout.endswith("7006652")  # steps, then answer
