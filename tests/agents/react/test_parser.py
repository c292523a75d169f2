"""Every notation CONTRACT.md says the parser accepts, and what it must refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.errors import ParseError
from agents.react.parser import is_prose, parse_completion


@pytest.mark.parametrize(
    ("text", "action", "action_input", "thought"),
    [
        (
            "Thought: I need x\nAction: search[Colorado orogeny]",
            "search",
            "Colorado orogeny",
            "I need x",
        ),
        (
            "Thought 2: hmm\nAction 2: Search[High Plains (United States)]\nObservation 2: blah",
            "search",
            "High Plains (United States)",
            "hmm",
        ),
        (
            "Thought: c\nAction: python[\nxs = [1, 2, 3]\nprint(xs[0] + sum(xs))\n]\n"
            "Observation: 7\nThought: invented",
            "python",
            "xs = [1, 2, 3]\nprint(xs[0] + sum(xs))",
            "c",
        ),
        (
            "Thought: c\nAction: python\n```python\nprint(1 + 1)\n```\n",
            "python",
            "print(1 + 1)",
            "c",
        ),
        (
            "Thought: s\nAction: search\nAction Input: foo bar\nObservation: x",
            "search",
            "foo bar",
            "s",
        ),
        ("Thought: ok\nFinal Answer: 42", "finish", "42", "ok"),
        ("Action: Finish[1,800 to 7,000 ft]", "finish", "1,800 to 7,000 ft", ""),
        ("Thought: x\nAction: search[a]\nAction: search[b]", "search", "a", "x"),
        ("**Thought:** x\n**Action:** python[print(2)]", "python", "print(2)", "x"),
        ("Thought: x\nAction: python[```python\nprint(3)\n```]", "python", "print(3)", "x"),
        ("Thought: x\r\nAction: FINISH[done]\r\n", "finish", "done", "x"),
        (
            "Thought: x\nAction: python[\n    if True:\n        print(4)\n]",
            "python",
            "if True:\n    print(4)",
            "x",
        ),
        (
            "Thought: x\nAction: python[d = {'a': [1, [2]]}\nprint(d['a'][1][0])]",
            "python",
            "d = {'a': [1, [2]]}\nprint(d['a'][1][0])",
            "x",
        ),
        ("I think a lot.\nAction: search[q]", "search", "q", "I think a lot."),
        (
            "Thought: x\nAction: python\nAction Input: ```python\nprint(5)\n```",
            "python",
            "print(5)",
            "x",
        ),
        # Written by Qwen2.5-Coder-0.5B behind llama_cpp.server (issue 9): one line, twice.
        (
            "Thought: The last reply could not be used because no action was found. "
            'Action: python[print("Hello, World!")]',
            "python",
            'print("Hello, World!")',
            "The last reply could not be used because no action was found.",
        ),
        (
            "Thought: Thought: I will compute it. Action: python[print(987 * 654 - 321)]",
            "python",
            "print(987 * 654 - 321)",
            "I will compute it.",
        ),
        ("Thought: done. Action: finish[645177]", "finish", "645177", "done."),
    ],
)
def test_accepted_forms(text: str, action: str, action_input: str, thought: str) -> None:
    step = parse_completion(text)
    assert (step.action, step.action_input, step.thought) == (action, action_input, thought)


@pytest.mark.parametrize(
    "text", ["", "just text", "Thought: x\nAction: search", "Thought: x\nAction: [oops]"]
)
def test_unparsable_completions_raise(text: str) -> None:
    with pytest.raises(ParseError):
        parse_completion(text)


@given(st.text(max_size=300))
def test_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        step = parse_completion(text)
    except ParseError:
        return
    assert step.action == step.action.lower()


@given(
    st.sampled_from(["search", "Search", "PYTHON", "finish"]),
    st.text(
        alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs", "Cc"]),
        min_size=1,
        max_size=60,
    ).filter(lambda s: s.strip()),
)
def test_round_trip_single_line_input(name: str, value: str) -> None:
    step = parse_completion(f"Thought: t\nAction: {name}[{value}]")
    assert step.action == name.lower()
    assert step.action_input == value.strip()


# What the embedded model really wrote: the real ReAct loop, llama.cpp with no grammar (as
# behind llama_cpp.server), 16 questions; each distinct completion, with its parse reviewed.
SMALL_MODEL = Path(__file__).parent / "data" / "small_model_completions.jsonl"
WRITTEN = [json.loads(line) for line in SMALL_MODEL.read_text(encoding="utf-8").splitlines()]


def test_the_small_model_fixtures_are_there() -> None:
    assert len(WRITTEN) >= 40
    assert {"parse_error" in row["expected"] for row in WRITTEN} == {True, False}


@pytest.mark.parametrize("row", WRITTEN, ids=lambda row: f"{row['question'][:24]}-{row['turn']}")
def test_what_the_small_model_wrote_parses_as_reviewed(row: dict[str, Any]) -> None:
    expected = row["expected"]
    if "parse_error" in expected:
        with pytest.raises(ParseError):
            parse_completion(row["completion"])
        assert is_prose(row["completion"]) is expected["prose"]
    else:
        step = parse_completion(row["completion"])
        assert (step.action, step.action_input) == (expected["action"], expected["action_input"])
        assert not is_prose(row["completion"])


@pytest.mark.parametrize(
    ("text", "prose"),
    [
        ("The product is 7006652.", True),
        ("Frank Herbert wrote it.\nHe also wrote sequels.", True),
        ("", False),
        ("Thought: done", False),
        ("I know. Action: finish[1]", False),
        ("Here it is:\npython[print(1)]", False),  # an action without its label
        ("Final Answer: 3", False),
        ("Observation: 4", False),
    ],
)
def test_prose_has_no_protocol_label(text: str, prose: bool) -> None:
    assert is_prose(text) is prose
