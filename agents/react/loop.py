"""The ReAct loop: Thought -> Action -> Observation, within a policy, as typed events.

    while not finished and step < policy.max_steps:
        completion = llm(messages)              # stops at "Observation"
        thought, action, input = parse(completion)
        refuse (and tell the model) when unparsable, not allowed or repeated
        otherwise run the tool; its output (or error) is the observation

Prose without any protocol label, once an action has run, is refused like any completion
without an action, with the ``finish`` line that would end the run with it.

When the step budget is spent, one last call asks for the best answer from what was
observed (status ``max_steps``); when the model's reply holds no answer (it wants another
action, or only thinks aloud), the answer is the last thing an action observed.

A ``finish`` whose answer repeats an error the run observed ("search is unavailable right
now...") is refused: a tool's error text is never passed off as the answer. An action whose
service is down when the run starts is not offered (``unavailable``; ``agents.factory``), and
the run's details name it. A run whose model keeps producing unusable steps ends with
status ``error`` after ``max_consecutive_refusals`` when it observed nothing; one that did
(passages, a result) is asked for its best answer from them, as when the budget is spent
(``details.ended_by`` says why). ``LLMError`` propagates: an unusable
backend ends the run, and the caller decides the status (HTTP 502). The deadline is enforced
by the caller around the whole iteration (``asyncio.timeout``), so it also bounds a backend
that hangs.

Observations are untrusted text: they can steer the model, but only among the run's actions,
because every action is checked against the policy here, before it runs. A step keeps the
tool's own output; the prompt shows it through ``agents.untrusted``, so that it cannot forge a
step, a role or a chat template's turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from agents.answer import normalise
from agents.errors import ActionNotAllowed, ParseError
from agents.events import (
    ActionEvent,
    FinalEvent,
    ObservationEvent,
    RunStatus,
    StepEvent,
    ThoughtEvent,
)
from agents.llm.base import LLM, ChatMessage, Choice, ToolCall, ToolSpec, Usage
from agents.memory import Memory
from agents.policy import FINISH, RunPolicy, truncated
from agents.react import prompt
from agents.react.parser import (
    ParsedStep,
    is_prose,
    newlines_in_strings_escaped,
    parse_completion,
    parse_json_step,
)
from agents.untrusted import defang_template_tokens, untrusted_text
from tools.base import Tool, ToolError, ToolOutput, cited_sources

STOP = ("\nObservation", "Observation:")
PROSE_ANSWER_CHARS = 500  # of a prose reply, shown back in the finish line it could have been
BEST_EFFORT_CHARS = 2000  # of an observation that becomes the answer when the budget runs out
CARRY_ON = "Use one of the other actions, or finish with what you know."
NO_VALUE = (
    "{answer} is what a program shows for no value; it does not answer the question. If the "
    "answer is that there is none, say so in words. " + CARRY_ON
)
ECHOED_ERROR = (
    "That answer repeats an error message the run observed; it does not answer the question. "
    + CARRY_ON
)
TOOLS_IGNORED = (
    "the model answered in prose instead of calling a function, and this server was found to "
    "ignore tool calls (AGENT_PROTOCOL=tools; see /readyz): its prose is not taken for an "
    "answer. Set AGENT_PROTOCOL=auto to use a step protocol this server enforces"
)
# The step the loop takes for the model when a request names collections. The embedded 1.5B
# model copies this step into its next ones: "I will look it up there first" made it retrieve
# again until refused, then finish with the passage pasted whole (5 of 8 questions over the
# Bill of Rights); this wording had it answer in its own words from the passages (8 of 8, 7
# right), 2026-12-03.
OPENING_THOUGHT = (
    "The question is about our own documents: I read them once, then answer with finish from "
    "what they say."
)
_MIN_ECHO_CHARS = 16  # shorter common phrases ("unavailable") may appear in real answers
_CLAUSE = re.compile(r"[^.;:()\[\]\n]+")


# What a program shows for no value (Python's, JSON's, JavaScript's): as a whole answer it
# answers nothing. The 1.5B model, with nothing computed, finished with None and the run was
# "finished" with it (pass EZ).
_NO_VALUE = frozenset({"None", "null", "undefined", "nil", "NaN"})


def says_nothing(answer: str, question: str) -> bool:
    """Whether ``answer`` is only a program's no-value word, which the question does not
    use itself ("What does f() return?" may well be answered None)."""
    word = answer.strip().strip("`'\".").strip()
    return word in _NO_VALUE and re.search(rf"\b{word}\b", question) is None


def echoes(answer: str, failures: Sequence[str]) -> bool:
    """Whether ``answer`` repeats one of the error texts a run observed: the whole text, or
    one of its clauses of at least ``_MIN_ECHO_CHARS`` characters ("search is unavailable right
    now"), compared without case or spacing. Small models copy the last observation into
    ``finish``."""
    said = " ".join(answer.split()).casefold()
    if not said:
        return False
    for failure in failures:
        text = " ".join(failure.split()).casefold()
        if len(said) >= _MIN_ECHO_CHARS and said in text:
            return True
        for clause in _CLAUSE.findall(text):
            clause = clause.strip(" ,")
            if len(clause) >= _MIN_ECHO_CHARS and clause in said:
                return True
    return False


@dataclass(slots=True)
class _State:
    messages: list[ChatMessage]
    step: int = 0
    llm_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    refusals_in_a_row: int = 0
    observed: int = 0  # actions that ran and gave an observation
    done: set[tuple[str, str]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)  # error texts observed: never an answer
    last_result: str | None = None  # the last observation of an action that worked
    question: str = ""
    told_no_value: bool = False  # a finish with None was refused once (says_nothing)


class ReActAgent:
    """One run of one question. Create one per request; it holds that run's state."""

    def __init__(
        self,
        llm: LLM,
        tools: Mapping[str, Tool],
        policy: RunPolicy,
        *,
        grammar: str | None = None,
        unavailable: Mapping[str, str] | None = None,
        opening: str | None = None,
    ) -> None:
        self._llm = llm
        self._policy = policy
        # An action the run takes before the model's first step, with the question as its
        # input (``retrieve`` over the collections a request named): see ``_open``.
        self._opening = opening if opening in tools and policy.allows(opening or "") else None
        self._unavailable = dict(unavailable or {})  # action -> why it is down, not offered
        self._tools = {name: tool for name, tool in tools.items() if policy.allows(name)}
        self._grammar = grammar
        docs = [prompt.ActionDoc(t.name, t.input_hint, t.description) for t in self._tools.values()]
        self._docs = [*docs, prompt.FINISH_DOC]
        self._schema = prompt.step_schema([d.name for d in self._docs])  # AGENT_PROTOCOL=json
        self._specs = tuple(
            ToolSpec(
                wire_name(d.name),
                d.description,
                {
                    "type": "object",
                    "properties": {d.input_hint: {"type": "string"}},
                    "required": [d.input_hint],
                },
            )
            for d in self._docs
        )

    def first_messages(self, question: str, memory: Memory | None = None) -> list[ChatMessage]:
        """The conversation the first step sends: the system prompt, the thread's earlier
        turns in ``memory`` (``agents.react.prompt.conversation``), then the question."""
        if self._native:
            system = prompt.tools_system_prompt()
        elif self._json:
            system = prompt.json_system_prompt(self._docs)
        else:
            system = prompt.text_system_prompt(self._docs)
        return [
            ChatMessage("system", system),
            *prompt.conversation(question, memory, native=self._native, json_steps=self._json),
        ]

    @property
    def _native(self) -> bool:
        return self._policy.protocol == "tools" and self._llm.supports_tools

    @property
    def _json(self) -> bool:
        return self._policy.protocol == "json"

    async def run(self, question: str, memory: Memory | None = None) -> AsyncIterator[StepEvent]:
        """The run's step events; ``memory`` is what the model sees of the thread's earlier
        turns (``agents.memory``), before the question."""
        native = self._native
        state = _State(self.first_messages(question, memory), question=question)
        if self._opening is not None:
            async for event in self._open(state, self._opening, native):
                yield event
        while state.step < self._policy.max_steps:
            state.step += 1
            choice = await self._complete(state, native)
            if native and not choice.tool_calls and self._policy.tools_ignored:
                yield ThoughtEvent(state.step, choice.text.strip()[:2000])
                yield ActionEvent(state.step, None, "")
                yield self._final(state, "error", None, error=TOOLS_IGNORED)
                return
            outcome = self._read(choice, native, state.observed)
            if isinstance(outcome, ParseError):
                parsed = None
                yield ThoughtEvent(state.step, choice.text.strip()[:2000])
                yield ActionEvent(state.step, None, "")
                observation = f"Your last reply could not be used: {outcome}"
                refused = True
            else:
                parsed = outcome
                yield ThoughtEvent(state.step, parsed.thought)
                yield ActionEvent(state.step, parsed.action, parsed.action_input)
                answer = parsed.action_input.strip()
                nothing = says_nothing(answer, state.question) and not state.told_no_value
                if parsed.action == FINISH and answer and nothing:
                    # Once: a model that then says it again means the word.
                    state.told_no_value = True
                    observation, refused = NO_VALUE.format(answer=answer), True
                elif parsed.action == FINISH and answer and not echoes(answer, state.failures):
                    yield self._final(state, "finished", answer)
                    return
                else:
                    observation, refused = await self._act(state, parsed)
                    state.observed += not refused
            observation = self._truncate(observation)
            yield ObservationEvent(state.step, observation, refused=refused)
            self._remember(state, choice, observation, native)
            state.refusals_in_a_row = state.refusals_in_a_row + 1 if refused else 0
            if state.refusals_in_a_row >= self._policy.max_consecutive_refusals:
                if state.observed:
                    # Something was observed (passages, a result): ask for the best answer
                    # from it, as when the budget is spent, rather than losing it. Seen with
                    # the 1.5B model: it repeated its opening retrieve until the run ended
                    # with no answer, the passage it needed in front of it.
                    async for event in self._best_answer(state, refused=observation):
                        yield event
                    return
                # Say what was refused last: an unparsable reply, an action outside the
                # allow-list, or the same action again (e.g. a program the sandbox refused).
                yield self._final(
                    state,
                    "error",
                    None,
                    error=f"the model produced no usable action in {state.refusals_in_a_row} "
                    f"consecutive steps; the last was refused: {observation[:300]}",
                )
                return
        async for event in self._best_answer(state):
            yield event

    async def _open(self, state: _State, action: str, native: bool) -> AsyncIterator[StepEvent]:
        """Step 1, taken for the model: ``action`` with the question as its input, written
        into the conversation as if the model had chosen it. A request that names document
        collections wants them read; a small model left to choose answered from memory with
        python ("Is the office closed on 24 December?" got a made-up schedule: the 1.5B
        model, three questions out of three)."""
        state.step += 1
        parsed = ParsedStep(OPENING_THOUGHT, action, " ".join(state.question.split())[:300])
        yield ThoughtEvent(state.step, parsed.thought)
        yield ActionEvent(state.step, parsed.action, parsed.action_input)
        observation, refused = await self._act(state, parsed)
        state.observed += not refused
        observation = self._truncate(observation)
        yield ObservationEvent(state.step, observation, refused=refused)
        if native:
            arguments = json.dumps({self._tools[action].input_hint: parsed.action_input})
            call = ToolCall(f"call_{action}_1", wire_name(action), arguments)
            choice = Choice(parsed.thought, (call,))
        elif self._json:
            choice = Choice(prompt.json_step(parsed.thought, action, parsed.action_input))
        else:
            choice = Choice(f"Thought: {parsed.thought}\nAction: {action}[{parsed.action_input}]")
        self._remember(state, choice, observation, native)

    async def _complete(self, state: _State, native: bool) -> Choice:
        json_steps = self._json  # "json" and "tools" exclude each other
        completion = await self._llm.complete(
            state.messages,
            stop=() if native or json_steps else _stop(state.question),
            temperature=self._policy.temperature,
            max_tokens=self._policy.max_tokens,
            tools=self._specs if native else (),
            grammar=None if native or json_steps else self._grammar,
            response_schema=self._schema if json_steps else None,
        )
        state.llm_calls += 1
        state.usage = state.usage + completion.usage
        return completion.choices[0] if completion.choices else Choice("")

    def _read(self, choice: Choice, native: bool, observed: int) -> ParsedStep | ParseError:
        if native and choice.tool_calls:
            try:
                return _from_tool_call(choice.tool_calls[0], choice.text, self._docs)
            except ParseError as exc:
                return exc  # a malformed call goes back to the model, whatever text came too
        if self._json:
            try:
                return parse_json_step(choice.text)
            except ParseError as exc:
                if observed and is_prose(choice.text) and "{" not in choice.text:
                    answer = " ".join(choice.text.split())[:PROSE_ANSWER_CHARS]
                    finish = prompt.json_step("I have the answer.", FINISH, answer)
                    return ParseError(
                        f"{exc} If your reply is the final answer, reply with exactly: {finish}"
                    )
                return exc
        try:
            return parse_completion(choice.text)
        except ParseError as exc:
            if native and choice.text.strip():
                # A tool-calling model that answers in plain text, with no call, is done.
                return ParsedStep("", FINISH, choice.text.strip())
            if boxed := _boxed_answer(choice.text):
                # A worked solution that ends in a boxed answer and no action (the 1.5B
                # model's, from the first step): shown the finish line it meant; told only
                # "no action", it copied a few-shot example and finished wrong (pass EZ).
                return ParseError(
                    f"{exc} If {boxed} is your final answer, reply with exactly this line: "
                    f"Action: finish[{boxed}]"
                )
            if observed and is_prose(choice.text):
                # Prose once an action has run is most likely the answer ("The product is
                # 7006652.", as small models write it). The protocol still wants a step, so
                # the model is shown the one line that would finish with it: small models
                # copy what they are shown.
                answer = " ".join(choice.text.split())[:PROSE_ANSWER_CHARS]
                return ParseError(
                    f"{exc} If your reply is the final answer, reply with exactly this line: "
                    f"Action: finish[{answer}]"
                )
            return exc

    async def _act(self, state: _State, parsed: ParsedStep) -> tuple[str, bool]:
        """Run the parsed action; returns (observation, refused)."""
        if parsed.action == FINISH:
            if parsed.action_input.strip():  # it echoed an error (see ``echoes``)
                return ECHOED_ERROR, True
            return "finish needs the answer between the brackets: finish[<answer>].", True
        if parsed.action in self._unavailable:
            why = self._unavailable[parsed.action]
            return f"{parsed.action} is unavailable in this run ({why}). {CARRY_ON}", True
        if not self._policy.allows(parsed.action) or parsed.action not in self._tools:
            refusal = ActionNotAllowed(parsed.action, self._policy.allowed)
            return f"{refusal}. Use one of the allowed actions.", True
        key = (parsed.action, " ".join(parsed.action_input.split()).casefold())
        if key in state.done:
            return (
                f"You already ran {parsed.action} with this input; its observation is above. "
                "Use it, try a different input, or finish.",
                True,
            )
        state.done.add(key)
        try:
            output = await self._tools[parsed.action].run(parsed.action_input)
        except ToolError as exc:
            state.failures.append(str(exc))
            return f"Error: {exc}", False
        if isinstance(output, ToolOutput):
            if output.failed:
                state.failures.append(str(output))
            elif output.result:
                state.last_result = output.result
        elif output.strip():
            state.last_result = output.strip()
        return str(output), False

    def _remember(self, state: _State, choice: Choice, observation: str, native: bool) -> None:
        # The observation is untrusted, and so is the model's text that may echo it: neither
        # may carry a chat template's tokens back into the prompt (agents.untrusted).
        said = defang_template_tokens(choice.text)
        if native and choice.tool_calls:
            state.messages.append(ChatMessage("assistant", said, choice.tool_calls))
            first, *rest = choice.tool_calls
            shown = untrusted_text(observation)
            state.messages.append(ChatMessage("tool", shown, tool_call_id=first.id))
            for extra in rest:
                ignored = "Ignored: one action per step."
                state.messages.append(ChatMessage("tool", ignored, tool_call_id=extra.id))
            return
        state.messages.append(ChatMessage("assistant", said.strip()))
        state.messages.append(ChatMessage("user", prompt.observation_message(observation)))

    async def _best_answer(
        self, state: _State, *, refused: str | None = None
    ) -> AsyncIterator[StepEvent]:
        """The budget is spent (the steps', or with ``refused`` the refusals' in a row): one
        last call, without tools, for the best answer so far."""
        json_steps = self._json
        request = prompt.final_answer_request(json_steps=json_steps, refused=refused is not None)
        state.messages.append(ChatMessage("user", request))
        completion = await self._llm.complete(
            state.messages,
            stop=() if json_steps else _stop(state.question),
            temperature=self._policy.temperature,
            max_tokens=self._policy.max_tokens,
            response_schema=prompt.step_schema([FINISH]) if json_steps else None,
        )
        state.llm_calls += 1
        state.usage = state.usage + completion.usage
        text = completion.text.strip()
        try:
            parsed = parse_json_step(text) if json_steps else parse_completion(text)
        except ParseError:
            # Prose is the model's answer in its own words; a bare label is nothing.
            thought, answer = "", text if is_prose(text) else ""
        else:
            thought = parsed.thought
            # Another action, or a finish without input, holds no answer: its thought is a
            # plan ("I will compute it with Python."), not a result.
            answer = parsed.action_input.strip() if parsed.action == FINISH else ""
        if (
            echoes(answer, state.failures)
            or _copied_from_an_example(answer, state.question, state.messages)
            or says_nothing(answer, state.question)
        ):
            answer = ""
        details: dict[str, object] = {}
        if refused is not None:
            details["ended_by"] = {
                "refusals_in_a_row": state.refusals_in_a_row,
                "last": refused[:300],
            }
        if not answer and state.last_result and not says_nothing(state.last_result, ""):
            answer = state.last_result[:BEST_EFFORT_CHARS]
            details["answer_from"] = "observation"  # the model's last words held no answer
        state.step += 1
        yield ThoughtEvent(state.step, thought)
        yield ActionEvent(state.step, FINISH, answer)
        yield self._final(state, "max_steps", answer or None, details=details)

    def _final(
        self,
        state: _State,
        status: RunStatus,
        answer: str | None,
        *,
        error: str | None = None,
        details: dict[str, object] | None = None,
    ) -> FinalEvent:
        details = dict(details or {})
        if self._unavailable:
            details["unavailable_actions"] = dict(self._unavailable)
        sources = [found for tool in self._tools.values() for found in cited_sources(tool, answer)]
        if sources:  # the passages retrieve showed, those the answer cites ([1]) first
            details["sources"] = sources
        if answer is not None:  # without what the question did not ask for (agents.answer)
            answer = normalise(state.question, answer, prompt.exemplar_sentences())
        return FinalEvent(
            status,
            answer,
            usage=state.usage,
            llm_calls=state.llm_calls,
            error=error,
            details=details,
        )

    def _truncate(self, text: str) -> str:
        return truncated(text, self._policy.max_observation_chars)


def wire_name(action: str) -> str:
    """An action's name as a native tool call spells it: function names allow no dots, so an
    MCP tool's ``server.tool`` is sent as ``server__tool``."""
    return action.replace(".", "__")


def _stop(question: str) -> tuple[str, ...]:
    """Where a text step is cut: at the observation the model would invent. A question that
    itself holds "Observation:" is quoted by the model's steps (a program counting its
    characters), and each was cut there until the run ended in error (pass EZ): only a line
    that starts with it stops the model then."""
    return STOP if "Observation:" not in question else ("\nObservation",)


def _copied_from_an_example(answer: str, question: str, messages: Sequence[ChatMessage]) -> bool:
    """An answer that a few-shot example finishes with, that nothing the run was told holds
    (the question, an observation) and whose unit the question does not speak of: asked for
    its best answer after steps that found nothing, the 1.5B model answered the example's
    "$27.05" to a question about Tokyo's population (red-team pass EZ). Only the examples'
    specific answers, with a number and more ("$27.05", "20 years"): "24" or "Tokyo" may well
    be a right answer from what the model knows, and so is "20 years" to "how many years
    passed between 2004 and 2024?" (pass FA)."""
    specific = len(answer) >= 4 and any(char.isdigit() for char in answer)
    if not specific or answer not in prompt.exemplar_answers():
        return False
    if _units(answer) & _units(question):
        return False
    told = (m.content for m in messages[1:] if m.role != "assistant")  # not the examples
    return not any(answer in text for text in told)


_CURRENCY_WORDS = {"$": "dollar", "€": "euro", "£": "pound"}


def _units(text: str) -> set[str]:
    """The words of ``text`` and its currency signs, as words, without a plural's s."""
    words = re.findall(r"[a-z]+", text.lower())
    words += [word for sign, word in _CURRENCY_WORDS.items() if sign in text]
    return {word.removesuffix("s") for word in words if len(word) > 1}


_BOXED = re.compile(r"\\boxed\{([^{}\n]{1,200})\}")


def _boxed_answer(text: str) -> str | None:
    """The last LaTeX ``\\boxed{...}`` answer a reply holds, as math-trained models end a
    worked solution; None without one."""
    found = _BOXED.findall(text)
    return found[-1].strip() or None if found else None


def _from_tool_call(call: ToolCall, text: str, docs: list[prompt.ActionDoc]) -> ParsedStep:
    name = call.name.strip().lower()
    name = next((d.name for d in docs if wire_name(d.name) == name), name)
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ParseError(f"the arguments of {name} are not valid JSON: {exc.msg}") from exc
    if isinstance(arguments, str):
        value = arguments
    elif isinstance(arguments, dict):
        hint = next((d.input_hint for d in docs if d.name == name), None)
        raw = arguments.get(hint) if hint else None
        if raw is None:
            raw = next((v for v in arguments.values() if isinstance(v, str)), None)
        if raw is None:
            raise ParseError(f"the call to {name} has no {hint or 'input'} argument")
        value = str(raw)
    else:
        raise ParseError(f"the arguments of {name} must be a JSON object")
    if name == "python":  # JSON read a '\n' the model meant for Python (parse_json_step)
        value = newlines_in_strings_escaped(value)
    return ParsedStep(text.strip(), name, value)
