"""The ReAct paper's HotpotQA trajectories replayed end to end through POST /ask.

Each trajectory's thoughts and actions are the scripted completions; its observations are what
the fake search engine returns. ``Lookup`` is not on our allow-list: the run must refuse it,
say what is allowed, and go on to the paper's answer.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.corpora import corpus_ids, load_jsonl
from tests.fakes import FakeOpenAI, Scenario
from tests.service.conftest import AppFactory
from tools.search.base import SearchResult

TRACES = "react_traces_hotpotqa.jsonl"


class TraceSearch:
    """Answers each query with the observation the trajectory recorded for it."""

    name = "trace"

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.table = {
            s["action_input"]: s.get("observation", "")
            for s in steps
            if s["action"].lower() == "search"
        }
        self.queries: list[str] = []

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        self.queries.append(query)
        text = self.table.get(query, "")
        return [SearchResult(query, text, f"https://en.wikipedia.org/wiki/{query}")]

    async def aclose(self) -> None:
        return None


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text)


@pytest.mark.parametrize("index", range(len(corpus_ids(TRACES, key="question"))) or [0])
async def test_replay_trajectory(app_client: AppFactory, index: int) -> None:
    trace = load_jsonl(TRACES)[index]
    completions = [
        f"Thought {n}: {s['thought']}\nAction {n}: {s['action']}[{s['action_input']}]"
        for n, s in enumerate(trace["steps"], start=1)
    ]
    fake = FakeOpenAI(scenarios=[Scenario(trace["question"], steps=completions)])
    search = TraceSearch(trace["steps"])
    async with app_client(fake, search=search) as client:
        response = await client.post("/ask", json={"question": trace["question"], "max_steps": 12})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "finished"
    assert body["answer"] == trace["answer"]
    assert len(body["steps"]) == len(trace["steps"])
    for step, recorded in zip(body["steps"], trace["steps"], strict=True):
        assert step["action"] == recorded["action"].lower()
        if recorded["action"] == "Lookup":
            assert "not allowed" in step["observation"]
            assert "search" in step["observation"]
        elif recorded["action"] == "Search":
            # Search results are cleaned of control characters, so compare the words.
            expected = " ".join(_words(recorded["observation"])[:8])
            assert expected in " ".join(_words(step["observation"]))
    assert search.queries == [s["action_input"] for s in trace["steps"] if s["action"] == "Search"]
