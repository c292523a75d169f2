"""The answer keeps only what the question asked for: no currency copied from an example."""

from __future__ import annotations

import pytest

from agents.answer import normalise, without_unasked_currency
from agents.react.prompt import exemplar_sentences
from tests.fakes import FakeOpenAI, Scenario, make_llm

DAYS = "How many days are there between 1969-07-20 and 1989-11-09?"


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        # What the embedded model wrote (issue 12): the money example's "$" on a day count.
        (DAYS, "$7417", "7417"),
        (DAYS, "$ 7,417.", "7,417"),
        ("How many apples are left?", "12 dollars", "12"),
        ("What is 1234 * 5678?", "7006652€", "7006652"),
        # Money in the question: the currency is the model's to give.
        ("Olivia has $23. She bought five bagels for $3 each. How much is left?", "$8", "$8"),
        ("How much change does Maya get?", "$27.05", "$27.05"),
        ("What does the ticket cost in euros?", "45 euros", "45 euros"),
        # Not a bare amount: left as written.
        (DAYS, "7417 days", "7417 days"),
        (DAYS, "about $7417 in total", "about $7417 in total"),
        ("What symbol means dollar?", "$", "$"),
    ],
)
def test_a_currency_the_question_did_not_ask_for_is_dropped(
    question: str, answer: str, expected: str
) -> None:
    assert without_unasked_currency(question, answer) == expected


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        # The examples' sentences with the run's own number in them.
        (DAYS, "The change is $7417.", "7417"),
        (DAYS, "There are 7417 days between the two dates.", "7417"),
        ("How much change does Maya get?", "the change is $12.50", "$12.50"),
        # A unit the question names nothing like.
        ("What is 17 squared plus 3?", "292 years", "292"),
        ("What is 17 squared plus 3?", "292 days.", "292"),
        ("How far away is the Moon?", "384400 km", "384400 km"),  # the model's own unit
        # What the question asked for, or not a bare number: left as written.
        (DAYS, "7417 days", "7417 days"),
        ("How many years passed between 1969 and 1989?", "20 years", "20 years"),
        ("How many apples are left?", "12 apples", "12 apples"),
        ("Which river flows through Paris?", "the Seine", "the Seine"),
        (
            DAYS,
            "There were 7417 days, or about 20 years.",
            "There were 7417 days, or about 20 years.",
        ),
        ("What is the capital of Japan?", "Tokyo", "Tokyo"),
        # Python's notation, copied from a program's observation (pass EZ)
        ("How many liters does the tank need?", "540.0", "540"),
        ("What is 15% of 2480?", "$372.00", "372"),
        ('Reverse the string "reactpal".', "'laptcaer'", "laptcaer"),
        ("What is 7 / 2?", "3.5", "3.5"),
        ("Print 2.0 exactly as 2.0", "2.0", "2.0"),  # as the question writes it
        ("Which letters?", "'a' and 'b'", "'a' and 'b'"),
        # ... unless the question asks for the decimals or the notation (pass FA)
        ("Round 2.96 to one decimal place.", "3.0", "3.0"),
        ("Write 5 with two decimal places.", "5.00", "5.00"),
        ("What is 1.50 + 1.50?", "3.00", "3.00"),
        ("Which version of HTTP was published as RFC 1945 in 1996?", "1.0", "1.0"),
        ("What is 1.5 + 1.5? Give it as a float.", "3.0", "3.0"),
        ("What does Python give for -1e-300 * 1e-300?", "-0.0", "-0.0"),
        ("What string does json.dumps('hi') return?", '"hi"', '"hi"'),
        ('What does print(repr("hi")) show?', "'hi'", "'hi'"),
        ("How many items? The list has 100.0 items", "0.0", "0.0"),  # it writes decimals
        ('Which word follows "the"?', '"cat"', '"cat"'),  # not a repr's quotes
        ("Whose book is it?", '"Sam\'s"', "Sam's"),  # a repr's, around a quote
    ],
)
def test_an_answer_keeps_only_what_the_question_asked_for(
    question: str, answer: str, expected: str
) -> None:
    assert normalise(question, answer, exemplar_sentences()) == expected


async def test_a_react_run_answers_the_day_count_without_the_examples_currency() -> None:
    from agents.policy import RunPolicy
    from agents.react.loop import ReActAgent
    from tools.base import ToolOutput

    class Days:
        name, description, input_hint = "python", "run Python", "code"

        async def run(self, tool_input: str) -> str:
            return ToolOutput("7417", result="7417")

    steps = [
        "Thought: use datetime\n"
        "Action: python[print((date(1989, 11, 9) - date(1969, 7, 20)).days)]",
        "Thought: The change is $7417.\nAction: finish[$7417]",
    ]
    fake = FakeOpenAI(scenarios=[Scenario("1969-07-20", steps=steps)])
    agent = ReActAgent(make_llm(fake), {"python": Days()}, RunPolicy(allowed=("python", "finish")))
    events = [event async for event in agent.run(DAYS)]
    assert events[-1].answer == "7417"  # type: ignore[union-attr]
