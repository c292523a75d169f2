"""The one place a run's agent is built: the run's actions only, a grammar only for an LLM that
takes one, warm-up prompts only for one that can be warmed up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agents.events import ActionEvent, FinalEvent, StepEvent
from agents.factory import AgentFactory, RunSpec
from agents.llm.base import ChatMessage, Completion
from agents.llm.openai_backend import OpenAILLM
from agents.pal import TASKS, PalOptions
from agents.policy import RunPolicy
from tests.agents.pal.conftest import FakeSandbox
from tests.agents.react.test_loop import RecordingTool
from tests.fakes import FakeOpenAI, make_llm
from tools.registry import ToolRegistry


class GrammarLLM:
    """The real client, claiming the embedded model's abilities, recording each grammar."""

    def __init__(self, inner: OpenAILLM) -> None:
        self.inner = inner
        self.grammars: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    supports_grammar = True
    supports_warm_up = True

    async def complete(
        self, messages: Sequence[ChatMessage], *, grammar: str | None = None, **kw: Any
    ) -> Completion:
        self.grammars.append(grammar)
        return await self.inner.complete(messages, **kw)


def registry() -> ToolRegistry:
    return ToolRegistry([RecordingTool("python"), RecordingTool("search")])


async def collect(events: Any) -> list[StepEvent]:
    return [event async for event in events]


async def test_react_run_gets_only_its_actions_and_no_grammar_for_a_plain_server() -> None:
    fake = FakeOpenAI(
        script=["Thought: look\nAction: search[x]", "Thought: done\nAction: finish[ok]"]
    )
    factory = AgentFactory(make_llm(fake), FakeSandbox(), registry())
    spec = RunSpec(mode="react", policy=RunPolicy(allowed=("search", "finish")))
    events = await collect(factory.run("Q?", spec))
    assert [e.action for e in events if isinstance(e, ActionEvent)] == ["search", "finish"]
    system = fake.chat_requests[0].messages[0]["content"]
    assert "search[" in system and "python[" not in system
    assert factory.warm_up_conversations(("search",)) == []  # a remote server: nothing to warm


async def test_a_grammar_goes_to_an_llm_that_takes_one() -> None:
    fake = FakeOpenAI(script=["Thought: done\nAction: finish[ok]"])
    llm = GrammarLLM(make_llm(fake))
    factory = AgentFactory(llm, FakeSandbox(), registry())  # type: ignore[arg-type]
    spec = RunSpec(mode="react", policy=RunPolicy(allowed=("python", "finish")))
    events = await collect(factory.run("Q?", spec))
    assert isinstance(events[-1], FinalEvent) and events[-1].answer == "ok"
    (grammar,) = llm.grammars
    assert grammar is not None and '"python["' in grammar and '"search["' not in grammar


async def test_warm_up_conversations_are_the_first_prompts_of_real_runs() -> None:
    fake = FakeOpenAI(
        script=["Thought: done\nAction: finish[4]", "```python\ndef solution():\n    return 4\n```"]
    )
    llm = GrammarLLM(make_llm(fake))
    factory = AgentFactory(llm, FakeSandbox(), registry())  # type: ignore[arg-type]
    pal, react, *families = factory.warm_up_conversations(("python", "search"))
    assert len(families) == len(TASKS) - 1  # every PAL family is warmed, the default first
    assert all(conversation[0] != pal[0] for conversation in families)
    actions = RunPolicy(allowed=("python", "search", "finish"))
    await collect(factory.run("What is 2 + 2?", RunSpec(mode="react", policy=actions)))
    await collect(factory.run("What is 2 + 2?", RunSpec(mode="pal", policy=actions)))
    react_sent, pal_sent = (request.messages for request in fake.chat_requests)
    assert [(m.role, m.content) for m in react] == [(m["role"], m["content"]) for m in react_sent]
    assert [(m.role, m.content) for m in pal] == [(m["role"], m["content"]) for m in pal_sent]


async def test_pal_runs_a_program_and_needs_python() -> None:
    fake = FakeOpenAI(script=["```python\ndef solution():\n    return 6 * 7\n```"])
    sandbox = FakeSandbox()
    factory = AgentFactory(make_llm(fake), sandbox, registry())
    spec = RunSpec(
        mode="pal", policy=RunPolicy(allowed=("python", "finish")), pal=PalOptions(samples=1)
    )
    events = await collect(factory.run("6 times 7?", spec))
    assert isinstance(events[-1], FinalEvent) and events[-1].answer == "42"
    assert len(sandbox.programs) == 1
    with pytest.raises(ValueError, match="python"):
        factory.run("Q?", RunSpec(mode="pal", policy=RunPolicy(allowed=("search", "finish"))))


class DownTool(RecordingTool):
    """An action whose service is down: it says so without being run."""

    def availability(self) -> str | None:
        return "duckduckgo.com cannot be reached (no DNS)"


async def test_an_action_that_is_down_is_left_out_of_prompt_grammar_and_details() -> None:
    fake = FakeOpenAI(script=["Thought: done\nAction: finish[7417]"])
    llm = GrammarLLM(make_llm(fake))
    tools = ToolRegistry([RecordingTool("python"), DownTool("search")])
    factory = AgentFactory(llm, FakeSandbox(), tools)  # type: ignore[arg-type]
    spec = RunSpec(mode="react", policy=RunPolicy(allowed=("python", "search", "finish")))
    events = await collect(factory.run("Q?", spec))
    system = fake.chat_requests[0].messages[0]["content"]
    assert "python[" in system and "search[" not in system
    (grammar,) = llm.grammars
    assert grammar is not None and '"search["' not in grammar
    end = events[-1]
    assert isinstance(end, FinalEvent) and end.answer == "7417"
    assert end.details == {
        "unavailable_actions": {"search": "duckduckgo.com cannot be reached (no DNS)"}
    }
    # The warm-up prompts are those of a run with every action (search comes back) and,
    # last, the one runs send while search is down: the one this run sent.
    conversations = factory.warm_up_conversations(("python", "search"))
    assert "search[" in conversations[1][0].content
    assert conversations[-1][0].content == system
    assert len(conversations) == len(TASKS) + 2
