"""The ReAct loop against a scripted OpenAI-compatible fake behind the real client."""

from __future__ import annotations

import pytest

from agents.errors import LLMError
from agents.events import ActionEvent, FinalEvent, ObservationEvent, StepEvent
from agents.policy import RunPolicy
from agents.react import ReActAgent
from agents.react.loop import echoes
from tests.agents.react.test_parser import WRITTEN
from tests.fakes import FakeOpenAI, ToolCallReply, make_llm
from tools.base import ToolError, ToolOutput, ToolUnavailable


class RecordingTool:
    """A tool that records its inputs and answers from a table."""

    def __init__(self, name: str, answers: dict[str, str] | None = None) -> None:
        self.name = name
        self.description = f"the {name} tool"
        self.input_hint = "input"
        self.answers = answers or {}
        self.inputs: list[str] = []

    async def run(self, tool_input: str) -> str:
        self.inputs.append(tool_input)
        if tool_input == "boom":
            raise ToolError("it broke")
        if tool_input == "offline":
            raise ToolUnavailable("search is unavailable right now")
        return self.answers.get(tool_input, f"{self.name} saw {tool_input}")


def policy(*actions: str, **kw: object) -> RunPolicy:
    return RunPolicy(allowed=(*actions, "finish"), **kw)  # type: ignore[arg-type]


async def collect(agent: ReActAgent, question: str = "Q?") -> list[StepEvent]:
    return [event async for event in agent.run(question)]


def final(events: list[StepEvent]) -> FinalEvent:
    last = events[-1]
    assert isinstance(last, FinalEvent)
    return last


async def test_tool_step_then_finish_sends_stop_and_observation() -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: compute\nAction: python[print(6 * 7)]\nObservation: 41 (invented)",
            "Thought: done\nAction: finish[42]",
        ]
    )
    python = RecordingTool("python", {"print(6 * 7)": "42"})
    events = await collect(ReActAgent(make_llm(fake), {"python": python}, policy("python")))
    assert final(events).status == "finished"
    assert final(events).answer == "42"
    assert final(events).llm_calls == 2
    assert final(events).usage.prompt_tokens > 0
    assert python.inputs == ["print(6 * 7)"]
    assert any("Observation" in s for s in fake.chat_requests[0].stop)
    second = fake.chat_requests[1].messages
    assert second[-1] == {"role": "user", "content": "Observation: 42"}
    assert "invented" not in second[-2]["content"]  # the hallucinated observation is dropped


async def test_prompt_lists_exactly_the_allowed_actions() -> None:
    fake = FakeOpenAI(script=["Action: finish[x]"])
    tools = {"python": RecordingTool("python"), "search": RecordingTool("search")}
    await collect(ReActAgent(make_llm(fake), tools, policy("python")))
    system = fake.chat_requests[0].messages[0]["content"]
    assert "- python[input]" in system and "- finish[answer]" in system
    assert "- search[" not in system and "Action: search[" not in system


async def test_action_outside_policy_is_refused_and_run_goes_on() -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: t\nAction: search[x]",
            "Thought: t\nAction: shell[rm -rf /]",
            "Thought: ok\nAction: finish[done]",
        ]
    )
    search = RecordingTool("search")
    events = await collect(ReActAgent(make_llm(fake), {"search": search}, policy()))
    observations = [e for e in events if isinstance(e, ObservationEvent)]
    assert [o.refused for o in observations] == [True, True]
    assert "not allowed" in observations[0].text and "finish" in observations[0].text
    assert search.inputs == []
    assert final(events).status == "finished"


async def test_unparsable_completion_is_a_step_with_no_action() -> None:
    fake = FakeOpenAI(script=["I am not sure what to do.", "Thought: ok\nAction: finish[7]"])
    events = await collect(ReActAgent(make_llm(fake), {}, policy()))
    actions = [e for e in events if isinstance(e, ActionEvent)]
    assert actions[0].action is None
    observation = next(e for e in events if isinstance(e, ObservationEvent))
    assert observation.refused and "Action:" in observation.text
    assert final(events).answer == "7"


async def test_prose_after_an_observation_is_shown_the_finish_line_it_could_be() -> None:
    """As the embedded model writes it (data/small_model_completions.jsonl): a program, then
    the result in a sentence, with no label. The protocol wants a step (CONTRACT.md), so it
    is refused, with the one line that would finish the run with it."""
    fake = FakeOpenAI(
        script=[
            "The product is 7006652.",  # nothing observed yet: the usual refusal
            "Thought: I will compute the product exactly with Python.\n"
            "Action: python[\nproduct = 1234 * 5678\nprint(product)\n]",
            "The product is\n7006652.",
            "Action: finish[The product is 7006652.]",
        ]
    )
    python = RecordingTool("python", {"product = 1234 * 5678\nprint(product)": "7006652"})
    events = await collect(ReActAgent(make_llm(fake), {"python": python}, policy("python")))
    observations = [e for e in events if isinstance(e, ObservationEvent)]
    assert [o.refused for o in observations] == [True, False, True]
    assert "Action: finish[" not in observations[0].text
    assert observations[2].text.endswith(
        "reply with exactly this line: Action: finish[The product is 7006652.]"
    )
    assert (final(events).status, final(events).answer) == ("finished", "The product is 7006652.")
    # The line reaches the model as it was written: nothing in it is quoted as untrusted.
    assert "\nAction: finish[" not in str(fake.requests[-1].messages[-1]["content"])


async def test_a_worked_solution_with_a_boxed_answer_is_shown_its_finish_line() -> None:
    """Pass EZ: the 1.5B model's first step on a word problem was a worked solution ending
    in ``\\boxed{18}``, with no action (data/small_model_completions.jsonl); told only that no
    action was found, it copied a few-shot example next and the run finished with 384."""
    written = next(
        row["completion"]
        for row in WRITTEN
        if "boxed" in row["completion"] and row["expected"].get("parse_error")
    )
    fake = FakeOpenAI(script=[written, "Action: finish[18]"])
    events = await collect(ReActAgent(make_llm(fake), {}, policy()))
    refusal = next(e for e in events if isinstance(e, ObservationEvent))
    assert refusal.refused
    assert refusal.text.endswith(
        "If 18 is your final answer, reply with exactly this line: Action: finish[18]"
    )
    assert (final(events).status, final(events).answer) == ("finished", "18")


async def test_a_question_that_holds_the_stop_word_is_not_cut_where_it_is_quoted() -> None:
    """Pass EZ: asked for the length of "Observation: done", every step of the 1.5B model
    quoted it and was cut there by the stop sequence, and the run ended in error."""
    question = 'How many characters are in the string "Observation: done"?'
    fake = FakeOpenAI(
        script=[
            'Thought: count them\nAction: python[print(len("Observation: done"))]',
            "Thought: done\nAction: finish[17]",
        ]
    )
    python = RecordingTool("python", {'print(len("Observation: done"))': "17"})
    events = await collect(
        ReActAgent(make_llm(fake), {"python": python}, policy("python")), question
    )
    assert python.inputs == ['print(len("Observation: done"))']
    assert (final(events).status, final(events).answer) == ("finished", "17")
    assert fake.requests[0].stop == ["\nObservation"]  # still cut where it would invent one


async def test_repeated_action_is_refused() -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: a\nAction: search[same thing]",
            "Thought: again\nAction: search[ Same   thing ]",
            "Thought: ok\nAction: finish[x]",
        ]
    )
    search = RecordingTool("search")
    events = await collect(ReActAgent(make_llm(fake), {"search": search}, policy("search")))
    observations = [e for e in events if isinstance(e, ObservationEvent)]
    assert search.inputs == ["same thing"]
    assert observations[1].refused and "already ran" in observations[1].text


async def test_budget_spent_asks_once_for_the_best_answer() -> None:
    fake = FakeOpenAI(
        script=lambda req: (
            "Thought: I know enough\nAction: finish[best guess]"
            if "no more actions can run" in req.text
            else f"Thought: more\nAction: search[q{len(req.messages)}]"
        )
    )
    events = await collect(
        ReActAgent(
            make_llm(fake), {"search": RecordingTool("search")}, policy("search", max_steps=3)
        )
    )
    end = final(events)
    assert end.status == "max_steps"
    assert end.answer == "best guess"
    assert end.llm_calls == 4
    assert fake.chat_requests[-1].tools == []


async def test_consecutive_garbage_ends_with_error() -> None:
    fake = FakeOpenAI(default="no idea")
    events = await collect(ReActAgent(make_llm(fake), {}, policy(max_consecutive_refusals=3)))
    assert final(events).status == "error"
    assert "3 consecutive" in (final(events).error or "")
    assert fake.calls == 3


async def test_tool_failures_are_observations() -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: t\nAction: search[boom]",
            "Thought: t\nAction: search[offline]",
            "Thought: t\nAction: finish[gave up]",
        ]
    )
    events = await collect(
        ReActAgent(make_llm(fake), {"search": RecordingTool("search")}, policy("search"))
    )
    texts = [e.text for e in events if isinstance(e, ObservationEvent)]
    assert texts == ["Error: it broke", "Error: search is unavailable right now"]
    assert final(events).status == "finished"


async def test_long_observations_are_truncated() -> None:
    fake = FakeOpenAI(script=["Action: search[big]", "Action: finish[ok]"])
    tool = RecordingTool("search", {"big": "x" * 10_000})
    events = await collect(
        ReActAgent(make_llm(fake), {"search": tool}, policy("search", max_observation_chars=100))
    )
    observation = next(e for e in events if isinstance(e, ObservationEvent))
    assert len(observation.text) < 200 and "truncated" in observation.text


async def test_llm_failure_propagates() -> None:
    fake = FakeOpenAI(default="Action: finish[x]")
    fake.fail("500", times=10)
    with pytest.raises(LLMError):
        await collect(ReActAgent(make_llm(fake), {}, policy()))


async def test_native_tool_calls_follow_the_same_policy() -> None:
    fake = FakeOpenAI(
        script=[
            ToolCallReply("search", {"input": "x"}),
            ToolCallReply("shell", {"input": "id"}),
            ToolCallReply("finish", {"answer": "42"}),
        ]
    )
    search = RecordingTool("search")
    agent = ReActAgent(make_llm(fake), {"search": search}, policy("search", protocol="tools"))
    events = await collect(agent)
    assert search.inputs == ["x"]
    refused = [e for e in events if isinstance(e, ObservationEvent) and e.refused]
    assert len(refused) == 1 and "not allowed" in refused[0].text
    assert final(events).answer == "42"
    sent_tools = {t["function"]["name"] for t in fake.chat_requests[0].tools}
    assert sent_tools == {"search", "finish"}
    roles = [m["role"] for m in fake.chat_requests[1].messages]
    assert roles[-2:] == ["assistant", "tool"]


async def test_native_plain_text_reply_is_the_answer() -> None:
    fake = FakeOpenAI(script=["The answer is 12."])
    agent = ReActAgent(make_llm(fake), {}, policy(protocol="tools"))
    events = await collect(agent)
    assert final(events).answer == "The answer is 12."


async def test_native_malformed_call_with_text_goes_back_to_the_model() -> None:
    """A tool call whose arguments are not JSON is a bad step, even with text beside it:
    only plain text without a tool call finishes a native run."""
    fake = FakeOpenAI(
        script=[
            ToolCallReply("search", "{not json", thought="Let me look that up."),
            ToolCallReply("finish", {"answer": "42"}),
        ]
    )
    search = RecordingTool("search")
    agent = ReActAgent(make_llm(fake), {"search": search}, policy("search", protocol="tools"))
    events = await collect(agent)
    assert final(events).answer == "42"
    assert final(events).status == "finished"
    refused = [e for e in events if isinstance(e, ObservationEvent) and e.refused]
    assert len(refused) == 1 and "not valid JSON" in refused[0].text
    assert search.inputs == []


@pytest.mark.parametrize(
    ("last_words", "answer", "answer_from"),
    [
        ("Thought: the passage says so\nAction: finish[Fredville]", "Fredville", None),
        (
            "Thought: let me look again\nAction: search[capital]",
            "search saw capital",
            "observation",
        ),
    ],
)
async def test_a_run_that_observed_something_ends_its_refusals_with_its_best_answer(
    last_words: str, answer: str, answer_from: str | None
) -> None:
    """Seen with the 1.5B model: it repeated its first action (the same retrieve) until the
    run ended with status error and no answer, what it needed in front of it."""
    fake = FakeOpenAI(
        script=lambda req: (
            last_words
            if "no more actions can run" in req.text
            else "Thought: look it up\nAction: search[capital]"
        )
    )
    search = RecordingTool("search")
    agent = ReActAgent(
        make_llm(fake), {"search": search}, policy("search", max_consecutive_refusals=3)
    )
    events = await collect(agent)
    end = final(events)
    assert search.inputs == ["capital"]  # once: the repeats were refused
    assert (end.status, end.answer) == ("max_steps", answer)
    assert end.details["ended_by"]["refusals_in_a_row"] == 3
    assert (
        "already" in end.details["ended_by"]["last"] or "again" in end.details["ended_by"]["last"]
    )
    assert end.details.get("answer_from") == answer_from
    assert fake.calls == 5  # the first search, three repeats, the request for an answer
    last_request = fake.chat_requests[-1].text  # why, truly (pass EZ: "the budget is spent")
    assert "Too many steps in a row were refused" in last_request
    assert "budget" not in last_request


TOKYO = "What is the population of Tokyo divided by 1000?"


@pytest.mark.parametrize(
    ("question", "last_words", "observed", "answer"),
    [
        (TOKYO, "Action: finish[$27.05]", "no result", "no result"),  # the observation
        (TOKYO, "Action: finish[$27.05]", "the change is $27.05", "27.05"),  # told: kept
        (TOKYO, "Action: finish[Tokyo]", "no result", "Tokyo"),  # may well be known: kept
        # the question speaks of its unit: may well be right (pass FA)
        ("How many years passed from 2004 to 2024?", "Action: finish[20 years]", "-", "20 years"),
        ("I paid 23 dollars, then 4.05 more: in all?", "Action: finish[$27.05]", "-", "$27.05"),
        ("How many years passed from 2004 to 2024?", "Action: finish[$27.05]", "-", "-"),
    ],
)
async def test_a_best_answer_copied_from_an_example_is_no_answer(
    question: str, last_words: str, observed: str, answer: str
) -> None:
    """Pass EZ: with nothing found, asked for its best answer, the 1.5B model answered the
    few-shot example's "$27.05", and the run gave it as the answer."""
    fake = FakeOpenAI(
        script=lambda req: (
            last_words
            if "no more actions can run" in req.text
            else "Thought: look it up\nAction: search[population]"
        )
    )
    search = RecordingTool("search", {"population": observed})
    agent = ReActAgent(
        make_llm(fake), {"search": search}, policy("search", max_consecutive_refusals=2)
    )
    end = final(await collect(agent, question))
    assert (end.status, end.answer) == ("max_steps", answer)


async def test_a_run_ended_by_refusals_says_what_was_refused() -> None:
    """From issue 15: the ending named 'no usable action' and nothing of why."""
    fake = FakeOpenAI(default="Thought: hmm\nAction: shell[rm -rf /]")
    events = await collect(ReActAgent(make_llm(fake), {}, policy(max_consecutive_refusals=2)))
    assert final(events).status == "error"
    assert "the last was refused" in (final(events).error or "")
    assert "'shell' is not allowed" in (final(events).error or "")


# -- answers that follow what was observed ---------------------------------------------------


def _spent(reply: str, observed: str = "645177") -> FakeOpenAI:
    """One python step that observes ``observed``, then ``reply`` to the budget-spent request."""
    return FakeOpenAI(
        script=lambda req: (
            reply
            if "no more actions can run" in req.text
            else "Thought: I will compute the result exactly with Python.\n"
            "Action: python[print(987*654-321)]"
        )
    )


async def test_budget_spent_answers_from_the_observation_when_the_model_has_no_answer() -> None:
    """max_steps 1 on 987*654-321: the step observed 645177; the last reply plans another
    action. Its thought is no answer: the observation is."""
    python = RecordingTool("python", {"print(987*654-321)": "645177"})
    fake = _spent("Thought: I will compute the result exactly with Python.\nAction: python[x]")
    events = await collect(
        ReActAgent(make_llm(fake), {"python": python}, policy("python", max_steps=1))
    )
    end = final(events)
    assert (end.status, end.answer) == ("max_steps", "645177")
    assert end.details == {"answer_from": "observation"}


async def test_budget_spent_keeps_a_prose_answer_and_a_finish() -> None:
    for reply, answer in (
        ("The result is 645177.", "The result is 645177."),
        ("Thought: done\nAction: finish[645177]", "645177"),
    ):
        python = RecordingTool("python", {"print(987*654-321)": "645177"})
        events = await collect(
            ReActAgent(make_llm(_spent(reply)), {"python": python}, policy("python", max_steps=1))
        )
        assert final(events).answer == answer
        assert final(events).details == {}


async def test_budget_spent_with_nothing_observed_has_no_answer() -> None:
    fake = _spent("Thought: I will compute the result exactly with Python.\nAction: python[x]")
    python = RecordingTool("python", {"print(987*654-321)": ""})
    events = await collect(
        ReActAgent(make_llm(fake), {"python": python}, policy("python", max_steps=1))
    )
    assert (final(events).status, final(events).answer) == ("max_steps", None)


async def test_a_failed_program_is_never_the_best_effort_answer() -> None:
    class FailingPython(RecordingTool):
        async def run(self, tool_input: str) -> str:
            return ToolOutput("NameError: name 'x' is not defined", failed=True)

    fake = _spent("Thought: retry\nAction: python[y]")
    events = await collect(
        ReActAgent(
            make_llm(fake), {"python": FailingPython("python")}, policy("python", max_steps=1)
        )
    )
    assert final(events).answer is None


async def test_a_finish_that_repeats_an_observed_error_is_refused() -> None:
    """The small model copies "search is unavailable right now..." into finish: refused, and
    the run goes on to a real answer."""
    fake = FakeOpenAI(
        script=[
            "Thought: look it up\nAction: search[offline]",
            "Thought: done\nAction: finish[Search is unavailable right now.]",
            "Thought: compute it\nAction: finish[7417]",
        ]
    )
    events = await collect(
        ReActAgent(make_llm(fake), {"search": RecordingTool("search")}, policy("search"))
    )
    refusal = [e for e in events if isinstance(e, ObservationEvent)][-1]
    assert refusal.refused and "repeats an error message" in refusal.text
    assert (final(events).status, final(events).answer) == ("finished", "7417")


async def test_an_answer_that_only_mentions_a_word_of_an_error_is_kept() -> None:
    fake = FakeOpenAI(
        script=[
            "Thought: look it up\nAction: search[offline]",
            "Thought: done\nAction: finish[The shop is unavailable on Sundays]",
        ]
    )
    events = await collect(
        ReActAgent(make_llm(fake), {"search": RecordingTool("search")}, policy("search"))
    )
    assert final(events).answer == "The shop is unavailable on Sundays"


@pytest.mark.parametrize(
    ("replies", "question", "answer"),
    [
        (["finish[None]", "finish[18]"], "How many eggs?", "18"),  # told once, then answered
        (["finish[`null`]", "finish[null]"], "How many eggs?", "null"),  # said again: meant
        (["finish[None]"], "Does f() return None or 0?", "None"),  # the question's own word
        (["finish[none of them]"], "Which of 4, 6, 8 is prime?", "none of them"),
    ],
)
async def test_a_finish_with_a_programs_no_value_is_told_once(
    replies: list[str], question: str, answer: str
) -> None:
    """Pass EZ: with nothing computed, the 1.5B model finished with None, and the run was
    'finished' with it."""
    fake = FakeOpenAI(script=[f"Thought: done\nAction: {reply}" for reply in replies])
    events = await collect(ReActAgent(make_llm(fake), {}, policy()), question)
    told = [e for e in events if isinstance(e, ObservationEvent)]
    assert [e.refused for e in told] == [True] * (len(replies) - 1)
    assert all("no value" in e.text and "in words" in e.text for e in told)
    assert (final(events).status, final(events).answer) == ("finished", answer)


@pytest.mark.parametrize(("last_result", "answer"), [("None", None), ("645177", "645177")])
async def test_a_best_answer_of_no_value_is_no_answer(last_result: str, answer: str | None) -> None:
    """Asked for its best answer, None is none: the last result stands in, unless it is one
    too (a program that printed None)."""
    fake = _spent("Thought: nothing found\nAction: finish[None]")
    python = RecordingTool("python", {"print(987*654-321)": last_result})
    events = await collect(
        ReActAgent(make_llm(fake), {"python": python}, policy("python", max_steps=1))
    )
    assert (final(events).status, final(events).answer) == ("max_steps", answer)


def test_echoes_compares_clauses_without_case_or_spacing() -> None:
    error = "search is unavailable right now (no network); try again later or answer"
    assert echoes("SEARCH IS   UNAVAILABLE right now", [error])
    assert echoes("no network", [error]) is False  # too short to be an echo on its own
    assert echoes("Sorry: search is unavailable right now, so I cannot say.", [error])
    assert echoes("42", [error]) is False
    assert echoes("search is unavailable right now", []) is False


async def test_an_unavailable_action_is_not_offered_and_the_details_say_why() -> None:
    fake = FakeOpenAI(
        script=["Thought: look it up\nAction: search[q]", "Thought: ok\nAction: finish[x]"]
    )
    search = RecordingTool("search")
    tools = {"search": search, "python": RecordingTool("python")}
    agent = ReActAgent(
        make_llm(fake),
        tools,
        RunPolicy(allowed=("python", "finish")),  # the factory leaves search out of the policy
        unavailable={"search": "duckduckgo.com cannot be reached"},
    )
    events = await collect(agent)
    system = fake.chat_requests[0].messages[0]["content"]
    assert "search[" not in system and "- python[" in system
    observation = next(e for e in events if isinstance(e, ObservationEvent))
    assert observation.refused and "unavailable in this run" in observation.text
    assert search.inputs == []
    assert final(events).details == {
        "unavailable_actions": {"search": "duckduckgo.com cannot be reached"}
    }


async def test_a_finish_that_repeats_a_failed_program_is_refused() -> None:
    class FailingPython(RecordingTool):
        async def run(self, tool_input: str) -> str:
            return ToolOutput("NameError: name 'total' is not defined", failed=True)

    fake = FakeOpenAI(
        script=[
            "Thought: compute\nAction: python[print(total)]",
            "Thought: done\nAction: finish[name 'total' is not defined]",
            "Thought: fine\nAction: finish[12]",
        ]
    )
    events = await collect(
        ReActAgent(make_llm(fake), {"python": FailingPython("python")}, policy("python"))
    )
    assert final(events).answer == "12"
