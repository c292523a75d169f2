"""Prompt injection through observations: the payloads in ``data/prompt_injections.jsonl``
arrive in a search result (title, snippet, URL) or in what a sandboxed program prints or
raises, and the real ReAct loop runs with the real ``openai`` client (FakeOpenAI), the real
``SearchTool`` (fake provider) and the real sandbox-backed ``PythonTool``.

Whatever the payload says (a forged ``Observation:``, ``Action: shell[...]``, "ignore previous
instructions", a chat template's role tokens, zero-width or homoglyph labels, exotic line
breaks, tool-call JSON, 20 000 characters of filler), the tests check, from the events and from
what the fake LLM received:

* the allow-list holds: no tool runs but the ones the model named and the run allows;
* the step's observation is exactly the tool's own output, and the payload adds no step, no
  LLM call and no answer;
* in the next prompt the payload appears only in the observation message, which starts
  ``Observation:`` and holds no line that starts like a protocol step or a role, no chat
  template token and no invisible or control character (nothing that could forge the
  boundary);
* the final answer is the one the scripted model gave.

A "gullible" model, which writes the payload as its own completion (fully hijacked), shows that
the worst an observation can do is steer the model among the run's allowed actions.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent
from agents.policy import RunPolicy
from agents.react import ReActAgent
from tests.fakes import FakeOpenAI, FakeRequest, Reply, ToolCallReply, make_llm
from tests.fakes.search import FakeSearchProvider
from tools.base import Tool
from tools.python_tool import PythonTool
from tools.sandbox import Sandbox, SandboxConfig
from tools.search import SearchResult, SearchTool

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATA = Path(__file__).parent / "data" / "prompt_injections.jsonl"
CHANNELS = ("search_title", "search_snippet", "search_url", "python_stdout", "python_error")
QUESTION = "What does the harbour authority say about the bridge toll?"
QUERY = "harbour authority bridge toll"
ANSWER = "SCRIPTED-ANSWER-7"  # the scripted model's own answer, never in a payload
# Large enough that no observation is cut: the recorded observation must equal the tool's.
NO_TRUNCATION = 200_000


@dataclass(frozen=True, slots=True)
class Payload:
    id: str
    cls: str
    origin: str
    channels: tuple[str, ...]
    text: str
    canary: str  # a plain substring that survives every channel's cleaning


def _load() -> list[Payload]:
    payloads = []
    for line in DATA.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        text = raw["text"] + raw.get("repeat_unit", "") * raw.get("repeat_times", 0)
        payloads.append(
            Payload(
                raw["id"],
                raw["class"],
                raw["origin"],
                tuple(raw["channels"]),
                text + raw.get("suffix", ""),
                raw["canary"],
            )
        )
    return payloads


PAYLOADS = _load()
TOOL_OF = {channel: channel.partition("_")[0] for channel in CHANNELS}  # search or python


def _cases(tools: Sequence[str]) -> list[Any]:
    """(payload, tool) for each payload and each of ``tools`` it arrives through; one run
    covers all the payload's channels of that tool (one search with a result per channel, one
    program that prints and raises), which keeps the LLM calls, the slow part, few."""
    return [
        pytest.param(p, tool, id=f"{p.id}-{tool}")
        for p in PAYLOADS
        for tool in tools
        if any(TOOL_OF[c] == tool for c in p.channels)
    ]


ALL_CASES = _cases(("search", "python"))
# Native tool calls: through python, whose output its tool does not clean.
NATIVE_CASES = _cases(("python",))
# The hijacked model: the payload reaches it through the web.
GULLIBLE_CASES = _cases(("search",))


# -- what the tests look for in a prompt, written independently of the code under test ------

# A line that a reader (or a model) takes for a step of the text protocol or a chat role.
_STEP_LABEL = re.compile(
    r"^[\W_]*(?:thought|action(?:\s*input)?|observation|final\s*answer|question|answer|"
    r"system|user|assistant)\s*\d*\s*:",
    re.IGNORECASE,
)
# Latin lookalikes that NFKC leaves alone (Cyrillic, Greek) and colon lookalikes.
_LOOKALIKES = str.maketrans(
    "\u0410\u0430\u0412\u0415\u0435\u041a\u041c\u041d\u041e\u043e\u0420\u0440\u0421\u0441"
    "\u0422\u0425\u0445\u0406\u0456\u0455\u0391\u0392\u0395\u0397\u0399\u039a\u039c\u039d"
    "\u039f\u03bf\u03a1\u03a4\u03a7\u03bd\ua789\u2236\u02d0",
    "AaBEeKMHOoPpCcTXxIisABEHIKMNOoPTXv:::",
)
# Control tokens of common chat templates (ChatML/Qwen, Llama 2 and 3, Gemma, Phi, DeepSeek,
# Mistral, Hermes tool tags): servers that parse special tokens in the prompt would end the
# observation's turn there.
_TEMPLATE_TOKEN = re.compile(
    r"[<\uff1c][|\uff5c]|[|\uff5c][>\uff1e]|</?s>|<bos>|<eos>|<(?:start|end)_of_turn>"
    r"|</?tool_(?:call|response)>|\[/?INST\]|<</?SYS>>"
    r"|\[/?(?:TOOL_CALLS|TOOL_RESULTS|SYSTEM_PROMPT|AVAILABLE_TOOLS)\]",
    re.IGNORECASE,
)
_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def forged_step_lines(text: str) -> list[str]:
    """The lines of ``text`` that start like a protocol step or a role (quoted lines, which
    start with ``>``, are data)."""
    found = []
    for line in text.split("\n"):
        skeleton = unicodedata.normalize("NFKC", line).translate(_LOOKALIKES)
        skeleton = "".join(ch for ch in skeleton if unicodedata.category(ch) != "Cf")
        if not skeleton.lstrip().startswith(">") and _STEP_LABEL.match(skeleton):
            found.append(line)
    return found


def boundary_forgeries(body: str) -> list[str]:
    """Everything in an observation's text that could pose as something other than data."""
    problems = [f"step or role line: {line!r}" for line in forged_step_lines(body)]
    problems += [f"template token: {m.group()!r}" for m in _TEMPLATE_TOKEN.finditer(body)]
    hidden = sorted(
        {
            ch
            for ch in body
            if ch in _LINE_BREAKS
            or (unicodedata.category(ch) in ("Cc", "Cf", "Cs") and ch not in "\n\t")
        }
    )
    problems += [f"hidden or control character U+{ord(ch):04X}" for ch in hidden]
    return problems


# -- the channels ------------------------------------------------------------------------------


def search_results(payload: Payload) -> list[SearchResult]:
    """One result per search channel the payload arrives through."""
    text, results = payload.text, []
    for n, channel in enumerate(payload.channels, 1):
        url = f"https://port.test/{n}"
        if channel == "search_title":
            results.append(SearchResult(text, "Tolls are collected at the north end.", url))
        elif channel == "search_snippet":
            results.append(SearchResult("Bridge tolls", text, url))
        elif channel == "search_url":
            results.append(SearchResult("Toll table", "Tolls are listed here.", f"{url}?q={text}"))
    return results


def program(payload: Payload) -> str:
    """A program that prints and/or raises the payload, as its channels say. The payload
    travels hex-encoded, so the model's own step never contains its text: only the observation
    does."""
    lines = [f"text = bytes.fromhex('{payload.text.encode('utf-8').hex()}').decode('utf-8')"]
    if "python_stdout" in payload.channels:
        lines.append("print(text)")
    if "python_error" in payload.channels:
        lines.append("raise ValueError(text)")
    return "\n".join(lines)


class Spy:
    """A real tool that records every input and what it returned (with no inner tool: one
    that must never run)."""

    def __init__(self, name: str, inner: Tool | None = None) -> None:
        self.name = name
        self.description = inner.description if inner else f"the {name} tool"
        self.input_hint = inner.input_hint if inner else "input"
        self.inner = inner
        self.inputs: list[str] = []
        self.outputs: list[str] = []

    async def run(self, tool_input: str) -> str:
        self.inputs.append(tool_input)
        if self.inner is None:
            raise AssertionError(f"{self.name} must never run")
        output = await self.inner.run(tool_input)
        self.outputs.append(output)
        return output


@dataclass
class Case:
    payload: Payload
    action: str  # the tool the payload arrives through
    tool_input: str  # what the scripted model writes between the brackets
    spies: dict[str, Spy]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(workers=2, timeout_s=2.0, queue_size=64)) as box:
        yield box


def make_case(payload: Payload, action: str, sandbox: Sandbox) -> Case:
    results = search_results(payload) if action == "search" else []
    spies = {
        "search": Spy("search", SearchTool(FakeSearchProvider(default=results))),
        "python": Spy("python", PythonTool(sandbox)),
        "shell": Spy("shell"),  # registered, never allowed
    }
    tool_input = QUERY if action == "search" else program(payload)
    return Case(payload, action, tool_input, spies)


def run_policy(case: Case, **kw: Any) -> RunPolicy:
    return RunPolicy(allowed=(case.action, "finish"), max_observation_chars=NO_TRUNCATION, **kw)


async def run(agent: ReActAgent) -> tuple[list[StepEvent], FinalEvent]:
    events = [event async for event in agent.run(QUESTION)]
    final = events.pop()
    assert isinstance(final, FinalEvent)
    assert not any(isinstance(e, FinalEvent) for e in events)
    return events, final


def contents(request: FakeRequest) -> list[str]:
    return [str(m.get("content") or "") for m in request.messages]


# -- the model follows its script -------------------------------------------------------------


def check_steady_run(
    case: Case, fake: FakeOpenAI, events: list[StepEvent], final: FinalEvent
) -> dict[str, Any]:
    """The assertions shared by both protocols; returns the observation message sent back."""
    # Only the tool the model named ran, once, with the model's input; nothing else ran.
    ran = {name: spy.inputs for name, spy in case.spies.items() if spy.inputs}
    assert ran == {case.action: [case.tool_input]}
    actions = [(e.step, e.action, e.action_input) for e in events if isinstance(e, ActionEvent)]
    assert actions == [(1, case.action, case.tool_input), (2, "finish", ANSWER)]

    # The observation is the tool's own output: the payload forged no step and no answer.
    observations = [e for e in events if isinstance(e, ObservationEvent)]
    assert [(o.step, o.refused) for o in observations] == [(1, False)]
    assert [o.text for o in observations] == case.spies[case.action].outputs
    if case.action == "search":  # the search tool's own promise: web text never starts a step
        assert not forged_step_lines(observations[0].text), observations[0].text
    assert (final.status, final.answer, final.llm_calls, fake.calls) == (
        "finished",
        ANSWER,
        2,
        2,
    )

    # The next prompt is the first one plus the model's step and one observation message, and
    # the payload is in that message only.
    first, second = fake.chat_requests
    assert second.messages[: len(first.messages)] == first.messages
    assert len(second.messages) == len(first.messages) + 2
    assert not any(case.payload.canary in text for text in contents(first))
    holders = [i for i, text in enumerate(contents(second)) if case.payload.canary in text]
    assert holders == [len(second.messages) - 1], "the payload must reach the prompt, there only"
    return second.messages[-1]


@pytest.mark.parametrize(("payload", "tool"), ALL_CASES)
async def test_text_protocol_keeps_injected_text_inside_the_observation(
    payload: Payload, tool: str, sandbox: Sandbox
) -> None:
    case = make_case(payload, tool, sandbox)
    step = f"Thought: I should look this up.\nAction: {case.action}[{case.tool_input}]"
    fake = FakeOpenAI(script=[step, f"Thought: I have what I need.\nAction: finish[{ANSWER}]"])
    agent = ReActAgent(make_llm(fake), case.spies, run_policy(case))
    events, final = await run(agent)

    message = check_steady_run(case, fake, events, final)
    assert fake.chat_requests[1].messages[-2] == {"role": "assistant", "content": step}
    assert message["role"] == "user"
    content = str(message["content"])
    assert content.startswith("Observation: ")
    body = content.removeprefix("Observation: ")
    assert boundary_forgeries(body) == [], content


@pytest.mark.parametrize(("payload", "tool"), NATIVE_CASES)
async def test_native_tool_calls_keep_injected_text_inside_the_tool_message(
    payload: Payload, tool: str, sandbox: Sandbox
) -> None:
    case = make_case(payload, tool, sandbox)
    hint = case.spies[case.action].input_hint
    fake = FakeOpenAI(
        script=[
            ToolCallReply(case.action, {hint: case.tool_input}, id="call_step1"),
            ToolCallReply("finish", {"answer": ANSWER}),
        ]
    )
    agent = ReActAgent(make_llm(fake), case.spies, run_policy(case, protocol="tools"))
    events, final = await run(agent)

    message = check_steady_run(case, fake, events, final)
    assert (message["role"], message["tool_call_id"]) == ("tool", "call_step1")
    assert boundary_forgeries(str(message["content"])) == [], message["content"]


# -- the model is fully hijacked: it writes the payload as its own step ------------------------


def gullible(case: Case) -> Callable[[FakeRequest], Reply]:
    first = f"Thought: I should look this up.\nAction: {case.action}[{case.tool_input}]"

    def script(request: FakeRequest) -> Reply:
        answered = sum(1 for m in request.messages if m.get("role") == "assistant")
        if answered == 0:
            return first
        if answered == 1:
            return case.payload.text  # obeys the injection word for word
        return f"Thought: back to the question.\nAction: finish[{ANSWER}]"

    return script


@pytest.mark.parametrize(("payload", "tool"), GULLIBLE_CASES)
async def test_a_hijacked_model_stays_inside_the_allow_list(
    payload: Payload, tool: str, sandbox: Sandbox
) -> None:
    case = make_case(payload, tool, sandbox)
    fake = FakeOpenAI(script=gullible(case))
    agent = ReActAgent(make_llm(fake), case.spies, run_policy(case, max_steps=4))
    events, final = await run(agent)

    allowed = {case.action, "finish"}
    refused = {e.step for e in events if isinstance(e, ObservationEvent) and e.refused}
    executed = [
        (e.action, e.action_input)
        for e in events
        if isinstance(e, ActionEvent) and e.action != "finish" and e.step not in refused
    ]
    # Every action outside the allow-list was refused, and no tool ran but for the steps the
    # model wrote and the policy let through.
    for event in events:
        if isinstance(event, ActionEvent) and event.action not in allowed:
            assert event.step in refused, event
    assert all(action in allowed for action, _ in executed)
    ran = [(name, text) for name, spy in case.spies.items() for text in spy.inputs]
    assert sorted(ran) == sorted(executed)
    assert not case.spies["shell"].inputs
    assert final.status in ("finished", "max_steps", "error")

    # Even when the model echoes the payload, no prompt carries a template token afterwards.
    for request in fake.chat_requests:
        for text in contents(request):
            assert not _TEMPLATE_TOKEN.search(text), text


# -- the data file -------------------------------------------------------------------------------


async def test_the_payload_file_is_varied_and_well_formed(sandbox: Sandbox) -> None:
    ids = [p.id for p in PAYLOADS]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    assert {p.cls for p in PAYLOADS} >= {
        "fake_observation",
        "fake_final_answer",
        "action_outside_allowlist",
        "ignore_instructions",
        "role_markers",
        "markdown_fence",
        "unicode",
        "newline_smuggling",
        "very_long",
        "nested_action",
        "tool_call_json",
    }
    tools: dict[str, Tool] = {
        "search": SearchTool(FakeSearchProvider()),
        "python": PythonTool(sandbox),
    }
    policy = RunPolicy(("search", "python", "finish"))
    trusted = ReActAgent(make_llm(FakeOpenAI()), tools, policy)
    prompt_text = "\n".join(m.content for m in trusted.first_messages(QUESTION))
    for p in PAYLOADS:
        assert p.channels and set(p.channels) <= set(CHANNELS), p.id
        assert p.origin and p.canary in p.text[:100], p.id
        assert p.canary not in prompt_text and ANSWER not in p.text, p.id
    assert max(len(p.text) for p in PAYLOADS) > 10_000  # the very long ones are
