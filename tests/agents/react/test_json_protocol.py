"""AGENT_PROTOCOL=json: each step is one JSON object asked for with a schema, and the
ReAct loop around it behaves as with the text protocol (the same policy, refusals, ending)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.errors import ParseError
from agents.events import ObservationEvent
from agents.react import ReActAgent, prompt
from agents.react.loop import TOOLS_IGNORED
from agents.react.parser import newlines_in_strings_escaped, parse_json_step
from tests.agents.react.test_loop import RecordingTool, collect, final, policy
from tests.fakes import FakeOpenAI, ToolCallReply, make_llm


def step(thought: str, action: str, action_input: str) -> str:
    return json.dumps({"thought": thought, "action": action, "action_input": action_input})


async def test_a_json_run_asks_with_the_schema_of_its_actions_and_finishes() -> None:
    fake = FakeOpenAI(
        script=[
            step("compute", "python", "print(6 * 7)"),
            step("done", "finish", "42"),
        ],
        enforces="openai",
    )
    python = RecordingTool("python", {"print(6 * 7)": "42"})
    agent = ReActAgent(make_llm(fake), {"python": python}, policy("python", protocol="json"))
    events = await collect(agent)
    assert final(events).status == "finished" and final(events).answer == "42"
    assert python.inputs == ["print(6 * 7)"]
    first = fake.chat_requests[0]
    schema = first.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["action"]["enum"] == ["python", "finish"]
    assert first.stop == []  # a JSON step has no "Observation" to stop at
    assert '"action": "python"' in first.messages[0]["content"]  # the examples are JSON
    assert fake.chat_requests[1].messages[-1]["content"] == "Observation: 42"


async def test_a_malformed_step_goes_back_to_the_model_and_an_unknown_action_is_refused() -> None:
    fake = FakeOpenAI(
        script=[
            '{"thought": "oops", "action": ',
            step("hack", "shell", "id"),
            step("done", "finish", "ok"),
        ]
    )
    agent = ReActAgent(make_llm(fake), {}, policy(protocol="json"))
    events = await collect(agent)
    refused = [e.text for e in events if isinstance(e, ObservationEvent) and e.refused]
    assert "no JSON object found" in refused[0]
    assert "not allowed" in refused[1]
    assert final(events).answer == "ok"


async def test_prose_after_an_action_is_shown_the_json_finish_it_could_be() -> None:
    fake = FakeOpenAI(
        script=[step("compute", "python", "print(1)"), "The answer is 1.", step("", "finish", "1")]
    )
    python = RecordingTool("python", {"print(1)": "1"})
    events = await collect(
        ReActAgent(make_llm(fake), {"python": python}, policy("python", protocol="json"))
    )
    refused = [e.text for e in events if isinstance(e, ObservationEvent) and e.refused]
    assert '"action": "finish", "action_input": "The answer is 1."' in refused[0]
    assert final(events).answer == "1"


async def test_the_spent_budget_asks_for_a_json_finish() -> None:
    fake = FakeOpenAI(
        script=[step("look", "python", "print(645177)"), step("so", "finish", "645177")]
    )
    python = RecordingTool("python", {"print(645177)": "645177"})
    agent = ReActAgent(
        make_llm(fake), {"python": python}, policy("python", protocol="json", max_steps=1)
    )
    events = await collect(agent)
    assert final(events).status == "max_steps" and final(events).answer == "645177"
    last = fake.chat_requests[-1].body["response_format"]["json_schema"]["schema"]
    assert last["properties"]["action"]["enum"] == ["finish"]


async def test_prose_from_a_server_that_ignores_tools_is_an_error_not_an_answer() -> None:
    fake = FakeOpenAI(script=["The answer is 690928."])
    agent = ReActAgent(make_llm(fake), {}, policy(protocol="tools", tools_ignored=True))
    events = await collect(agent)
    ended = final(events)
    assert ended.status == "error" and ended.answer is None
    assert ended.error == TOOLS_IGNORED


async def test_tool_calls_still_work_when_the_probe_said_otherwise() -> None:
    """The flag only refuses prose; a server that does call a tool is followed."""
    fake = FakeOpenAI(script=[ToolCallReply("finish", {"answer": "42"})])
    agent = ReActAgent(make_llm(fake), {}, policy(protocol="tools", tools_ignored=True))
    assert final(await collect(agent)).answer == "42"


def test_every_json_example_is_a_step_the_parser_reads() -> None:
    docs = [
        prompt.ActionDoc("python", "code", "run"),
        prompt.ActionDoc("search", "query", "look up"),
        prompt.FINISH_DOC,
    ]
    system = prompt.json_system_prompt(docs)
    lines = system.split("Examples:")[1].splitlines()
    steps = [line for line in lines if line.startswith('{"thought"')]
    assert len(steps) >= 8
    actions = {parse_json_step(line).action for line in steps}
    assert actions == {"python", "search", "finish"}
    assert "Action:" not in system  # no text-protocol step is left in the examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"thought": "t", "action": "Python", "action_input": "print(1)"}',
            ("python", "print(1)"),
        ),
        (
            '```json\n{"thought": "t", "action": "finish", "action_input": 42}\n```',
            ("finish", "42"),
        ),
        ('Sure. {"action": "search", "input": "x"} and more {}', ("search", "x")),
        ('{"action": "calc.add", "action_input": {"a": 1}}', ("calc.add", '{"a": 1}')),
    ],
)
def test_parse_json_step_reads_what_servers_send(text: str, expected: tuple[str, str]) -> None:
    parsed = parse_json_step(text)
    assert (parsed.action, parsed.action_input) == expected


@pytest.mark.parametrize(
    "text",
    [
        "no json",
        '{"thought": "t"}',
        '{"action": "python"}',
        '{"action": "a b", "action_input": ""}',
        "[1, 2]",
    ],
)
def test_parse_json_step_refuses_what_is_not_a_step(text: str) -> None:
    with pytest.raises(ParseError):
        parse_json_step(text)


# What the 1.5B default model wrote under the JSON protocol through the real service
# (red-team pass EZ; data/README.md): each completion's parse, reviewed.
JSON_MODEL = Path(__file__).parent / "data" / "json_model_completions.jsonl"
JSON_WRITTEN = [json.loads(line) for line in JSON_MODEL.read_text(encoding="utf-8").splitlines()]


def test_the_json_model_fixtures_are_there() -> None:
    assert len(JSON_WRITTEN) >= 30


@pytest.mark.parametrize(
    "row", JSON_WRITTEN, ids=lambda row: f"{row['question'][:24]}-{row['turn']}"
)
def test_what_the_model_wrote_in_json_parses_as_reviewed(row: dict[str, Any]) -> None:
    expected = row["expected"]
    if "parse_error" in expected:
        with pytest.raises(ParseError):
            parse_json_step(row["completion"])
        return
    step = parse_json_step(row["completion"])
    assert (step.action, step.action_input) == (expected["action"], expected["action_input"])
    if step.action == "python":  # what the model meant is a program: '\n' in a string
        compile(step.action_input, "<step>", "exec")  # had arrived as a line break (pass EZ)


@pytest.mark.parametrize(
    ("code", "meant"),
    [
        ("r = '\n'.join(p)", "r = '\\n'.join(p)"),
        ('print("a\nb", end="\n")', 'print("a\\nb", end="\\n")'),
        ("s = '''a\nb'''\nt = 'c\nd'", "s = '''a\nb'''\nt = 'c\\nd'"),
        ("# it's fine\nx = 'a'", "# it's fine\nx = 'a'"),
        ("x = 'a\\\nb'", "x = 'a\\\nb'"),  # a line continuation inside a string, kept
        ("y = \"it's\"\nz = r'\\''", "y = \"it's\"\nz = r'\\''"),
    ],
)
def test_a_line_break_json_made_inside_a_string_is_the_escape_meant(code: str, meant: str) -> None:
    assert newlines_in_strings_escaped(code) == meant
    compile(meant, "<step>", "exec")


def test_a_tool_calls_program_gets_the_escape_meant_too() -> None:
    """A native call's arguments are JSON as well: the same '\\n' read as a line break."""
    from agents.llm.base import ToolCall
    from agents.react.loop import _from_tool_call

    docs = [prompt.ActionDoc("python", "code", "run"), prompt.FINISH_DOC]
    arguments = json.dumps({"code": "print('a\nb')"})  # what the model sent: a JSON \n
    step = _from_tool_call(ToolCall("c1", "python", arguments), "", docs)
    assert step.action_input == "print('a\\nb')"
    compile(step.action_input, "<step>", "exec")
