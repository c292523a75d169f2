"""Per-run overhead of the ReAct loop, beside LangChain's and LangGraph's, in one run.

Every agent answers the same question with 3 tool steps and a finish, driven by an instant
in-process fake LLM and an instant fake tool, so what is measured is the framework's own cost
per run: prompt building, parsing, policy checks, events and bookkeeping (no sandbox, no
network). Peers: LangChain's ``AgentExecutor`` + ``create_react_agent`` (langchain-classic)
and LangGraph's prebuilt ReAct agent; they are installed by ``make bench`` only.

    .venv/bin/python bench/react_overhead.py [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agents.events import FinalEvent
from agents.llm.base import ChatMessage, Choice, Completion, ToolSpec, Usage
from agents.policy import RunPolicy
from agents.react import ReActAgent

warnings.filterwarnings("ignore")

STEPS = [
    "Thought: I need the first number.\nAction: calc[1 + 1]",
    "Thought: Now the second.\nAction: calc[2 + 2]",
    "Thought: And the third.\nAction: calc[3 + 3]",
    "Thought: I have everything.\nAction: finish[12]",
]
LC_STEPS = [
    s.replace("calc[", "Action: calc\nAction Input: ")
    .replace("]", "")
    .replace("Action: Action:", "Action:")
    for s in STEPS[:3]
] + ["Thought: I now know the final answer\nFinal Answer: 12"]


class InstantLLM:
    """Implements our LLM protocol; answers from the script instantly."""

    model = "instant"
    supports_n = False
    supports_tools = False
    supports_grammar = False
    supports_warm_up = False

    def __init__(self) -> None:
        self.calls = 0

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        max_tokens: int = 512,
        n: int = 1,
        tools: Sequence[ToolSpec] = (),
        grammar: str | None = None,
    ) -> Completion:
        text = STEPS[self.calls % len(STEPS)]
        self.calls += 1
        return Completion((Choice(text),), Usage(10, 10))

    async def check(self) -> None:
        return None

    async def warm_up(self, conversations: Sequence[Sequence[ChatMessage]]) -> int:
        return 0

    async def aclose(self) -> None:
        return None


class InstantTool:
    name = "calc"
    description = "evaluates a small sum"
    input_hint = "expression"

    async def run(self, tool_input: str) -> str:
        return "ok"


async def reactpal_run() -> None:
    agent = ReActAgent(InstantLLM(), {"calc": InstantTool()}, RunPolicy(("calc", "finish")))
    events = [e async for e in agent.run("What is 1+1 + 2+2 + 3+3?")]
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.answer == "12", final


def langchain_runner() -> Callable[[], Awaitable[None]]:
    from langchain_classic.agents import AgentExecutor, create_react_agent
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.prompts import PromptTemplate
    from langchain_core.tools import tool

    @tool
    def calc(expression: str) -> str:
        """evaluates a small sum"""
        return "ok"

    prompt = PromptTemplate.from_template(
        "Answer the question. Tools:\n{tools}\nUse: Thought/Action/Action Input/Observation; "
        "tool names: {tool_names}\nQuestion: {input}\n{agent_scratchpad}"
    )

    async def run() -> None:
        llm = FakeListLLM(responses=LC_STEPS)
        agent = create_react_agent(llm, [calc], prompt)
        executor = AgentExecutor(agent=agent, tools=[calc], max_iterations=8)
        result = await executor.ainvoke({"input": "What is 1+1 + 2+2 + 3+3?"})
        assert result["output"] == "12", result

    return run


def langgraph_runner() -> Callable[[], Awaitable[None]]:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langgraph.prebuilt import create_react_agent

    @tool
    def calc(expression: str) -> str:
        """evaluates a small sum"""
        return "ok"

    class ToolCallingFake(BaseChatModel):
        calls: int = 0

        @property
        def _llm_type(self) -> str:
            return "tool-calling-fake"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(self, messages: list[BaseMessage], *args: Any, **kw: Any) -> ChatResult:
            step = sum(1 for m in messages if m.type == "tool")
            if step < 3:
                message = AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "calc",
                            "args": {"expression": f"{step}+{step}"},
                            "id": f"call{step}",
                        }
                    ],
                )
            else:
                message = AIMessage(content="12")
            return ChatResult(generations=[ChatGeneration(message=message)])

    graph = create_react_agent(ToolCallingFake(), [calc])

    async def run() -> None:
        result = await graph.ainvoke({"messages": [("user", "What is 1+1 + 2+2 + 3+3?")]})
        assert result["messages"][-1].content == "12"

    return run


async def measure(run: Callable[[], Awaitable[None]], runs: int) -> list[float]:
    for _ in range(max(5, runs // 10)):
        await run()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    rows: list[tuple[str, list[float] | str]] = [
        ("reactpal ReActAgent", await measure(reactpal_run, args.runs))
    ]
    for label, factory in (
        ("LangChain AgentExecutor + create_react_agent", langchain_runner),
        ("LangGraph prebuilt create_react_agent", langgraph_runner),
    ):
        try:
            rows.append((label, await measure(factory(), args.runs)))
        except ImportError as exc:
            rows.append((label, f"not installed ({exc.name}); run `make bench`"))
    print(f"per-run overhead, 3 tool steps + finish, instant fake LLM and tool, {args.runs} runs")
    print(f"{'agent':<48} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'vs ours':>8}")
    ours = statistics.median(rows[0][1]) if isinstance(rows[0][1], list) else 1.0
    for label, result in rows:
        if isinstance(result, str):
            print(f"{label:<48} {result}")
            continue
        p50 = statistics.median(result)
        p99 = statistics.quantiles(result, n=100)[98]
        print(
            f"{label:<48} {p50:>8.3f} {p99:>8.3f} {statistics.fmean(result):>8.3f} "
            f"{p50 / ours:>7.1f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
