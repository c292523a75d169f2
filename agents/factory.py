"""Where a run's agent is assembled, for every caller: the HTTP service, its start-up warm-up
and the evaluation script build their agents here and nowhere else.

``AgentFactory`` holds what runs share (the LLM client, the sandbox, the action registry) and
builds one agent per run from that run's :class:`RunSpec`: the mode, the actions (already
resolved against the server's allow-list) and the budgets. What depends on the backend is
asked of the backend: a GBNF grammar is passed only to an LLM that honours one
(``supports_grammar``), and the prompts worth prefilling are only produced for one that can
be warmed up (``supports_warm_up``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent
from agents.llm.base import LLM, ChatMessage
from agents.llm.grammar import react_grammar
from agents.memory import Memory
from agents.pal import PalOptions, run_pal
from agents.pal.mode import PalSandbox
from agents.pal.prompt import DEFAULT_TASK, TASKS
from agents.pal.prompt import build_messages as pal_messages
from agents.policy import FINISH, RunPolicy
from agents.react import ReActAgent
from tools.base import ToolError, availability
from tools.registry import ToolRegistry
from tools.retrieve.tool import RetrieveAction, Scope

Mode = Literal["react", "pal"]
WARM_UP_QUESTION = "What is 2 + 2?"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run, as the caller validated it: ``policy.allowed`` is the run's action list;
    ``memory`` is what the model sees of the thread's earlier turns (``agents.memory.prepare``
    chooses it), None for a run outside a thread."""

    mode: Mode
    policy: RunPolicy
    pal: PalOptions = field(default_factory=PalOptions)
    memory: Memory | None = None
    # The document collections ``retrieve`` reads in this run (checked to be the caller's).
    collections: Scope | None = None


class AgentFactory:
    def __init__(self, llm: LLM, sandbox: PalSandbox, tools: ToolRegistry) -> None:
        self.llm = llm
        self.sandbox = sandbox
        self.tools = tools

    def react(
        self, policy: RunPolicy, *, skip_unavailable: bool = True, collections: Scope | None = None
    ) -> ReActAgent:
        """A ReAct agent limited to ``policy.allowed``, with a grammar if the LLM takes one.

        An action whose service is down right now (search offline) is left out of the run's
        prompt and grammar, and the run's details say so: a model shown an action that can
        only fail calls it, then takes the error for an answer. ``retrieve`` is this run's own
        copy over ``collections``; without any it is one of those left out."""
        tools = {tool.name: tool for tool in self.tools.subset(policy.allowed, strict=False)}
        retrieve = tools.get(RetrieveAction.name)
        opening = None
        if collections is not None and isinstance(retrieve, RetrieveAction):
            tools[RetrieveAction.name] = retrieve.scoped(collections)
            opening = RetrieveAction.name if collections.first else None
        unavailable: dict[str, str] = {}
        if skip_unavailable:
            unavailable = {name: why for name, tool in tools.items() if (why := availability(tool))}
        if unavailable:
            kept = tuple(action for action in policy.allowed if action not in unavailable)
            policy = replace(policy, allowed=kept)
        grammar = react_grammar(policy.allowed) if self.llm.supports_grammar else None
        return ReActAgent(
            self.llm, tools, policy, grammar=grammar, unavailable=unavailable, opening=opening
        )

    def run(self, question: str, spec: RunSpec) -> AsyncIterator[StepEvent]:
        """The step events of one run of ``question``."""
        if spec.mode == "pal":
            if "python" not in spec.policy.allowed:
                raise ValueError("pal mode runs a program: 'python' must be allowed")
            if spec.collections is not None:
                return self._pal_over_documents(question, spec, spec.collections)
            return run_pal(
                question, llm=self.llm, sandbox=self.sandbox, options=spec.pal, memory=spec.memory
            )
        return self.react(spec.policy, collections=spec.collections).run(question, spec.memory)

    async def _pal_over_documents(
        self, question: str, spec: RunSpec, collections: Scope
    ) -> AsyncIterator[StepEvent]:
        """PAL over the caller's documents: retrieve with the question first (step 1), then
        one program whose prompt holds the passages, so it computes with their numbers. The
        final answer's ``details.sources`` lists the passages."""
        action = self.tools.get(RetrieveAction.name)
        if not isinstance(action, RetrieveAction):
            raise ValueError("pal over documents needs the retrieve action")
        retrieve = action.scoped(collections)
        query = " ".join(question.split())[:300]
        yield ActionEvent(1, RetrieveAction.name, query)
        try:
            passages: str | None = await retrieve.run(query)
            yield ObservationEvent(1, passages or "")
        except ToolError as exc:
            passages = None
            yield ObservationEvent(1, str(exc))
        if not retrieve.shown:
            passages = None  # nothing matched: the program answers from the question alone
        async for event in run_pal(
            question,
            llm=self.llm,
            sandbox=self.sandbox,
            options=spec.pal,
            memory=spec.memory,
            context=passages,
            first_step=2,
        ):
            if isinstance(event, FinalEvent) and retrieve.shown:
                event = replace(
                    event, details={**event.details, "sources": retrieve.sources(event.answer)}
                )
            yield event

    def warm_up_conversations(self, actions: Sequence[str]) -> list[list[ChatMessage]]:
        """The first conversations of a PAL run of each task family (the default one first)
        and of a ReAct run over ``actions``: the prompts a backend's prompt cache should
        hold, or none when the LLM cannot be warmed up. They have no memory: earlier turns
        come after the cached prefix, so the prefix is the same."""
        if not self.llm.supports_warm_up:
            return []
        allowed = tuple(actions) if FINISH in actions else (*actions, FINISH)
        react = self.react(RunPolicy(allowed=allowed), skip_unavailable=False)
        families = sorted(TASKS, key=lambda task: task != DEFAULT_TASK)
        pal = [pal_messages(WARM_UP_QUESTION, task) for task in families]
        conversations = [pal[0], react.first_messages(WARM_UP_QUESTION), *pal[1:]]
        # An action whose service can be down (search, offline) is left out of a run's
        # prompt while it is: that prompt is the one such a machine sends every time.
        fragile = {name for name in allowed if _can_be_down(self.tools.get(name))}
        if fragile and len(fragile) < len(allowed) - 1:
            kept = tuple(name for name in allowed if name not in fragile)
            without = self.react(RunPolicy(allowed=kept), skip_unavailable=False)
            conversations.append(without.first_messages(WARM_UP_QUESTION))
        return conversations


def _can_be_down(tool: object) -> bool:
    """A tool whose service can be down says so (``tools.base.availability``)."""
    return callable(getattr(tool, "availability", None))
