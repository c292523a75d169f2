"""Training data from rated runs: the lines of ``GET /feedback/export`` (pure functions, no I/O).

Three formats, one JSON object per line (``jsonl``):

* ``sft``: ``{"messages": [...]}``, the chat transcript of a run that was scored positive or
  corrected: the format of OpenAI's chat fine-tuning API, which TRL's ``SFTTrainer`` also
  reads as a conversational dataset (``sft_record``).
* ``preference``: ``{"prompt": [...], "chosen": [...], "rejected": [...]}``, TRL's
  conversational preference format (DPO and its kin): one prompt, two assistant completions
  (``preference_records``).
* ``raw``: the stored run with its feedback under ``"feedback"`` (``raw_record``).

A transcript is only worth training on if it is what the model saw, so the prompt is rebuilt
with the agents' own prompt builders (``agents.react.prompt``, ``agents.pal.prompt``); where
the store does not keep what is needed, the choice made is written down here:

* **ReAct system prompt.** The store keeps neither the run's action list nor its protocol.
  The system prompt lists the actions the caller passes (the server's allow-list,
  ``action_docs``; by default the built-in ``python`` and ``search``), minus those the run's
  ``details.unavailable_actions`` say were left out, plus ``finish``. A request that narrowed
  the list saw fewer. Transcripts are written in the text protocol (``AGENT_PROTOCOL=text``,
  the default); a run made with native tool calls is written as the text protocol has it.
* **ReAct steps.** Each step is an assistant message in the protocol's form (``Thought: ...``
  then ``Action: name[input]``, a multi-line input on lines of its own as in the prompt's
  examples), defanged like the loop's own history (``agents.untrusted``); its observation is
  the user message the loop sent (``Observation: ...``, through ``observation_message``). The
  store keeps the parsed step, not the reply's raw text: for a reply in that form they are
  the same text.
* **Refused steps are left out of ``sft``**: an unparsable reply (``action`` None), an action
  the loop refused (not allowed, unavailable, repeated: recognised by the refusal the loop
  wrote) and a refused ``finish``, each with the refusal that answered it. A fine-tuning set
  must not teach the model to write steps that are thrown away. A tool that ran and failed
  (``Error: ...``) is kept: recovering from it is part of a good run. A step without an
  observation (the run was cut off while it ran) is left out everywhere.
* **Budget spent** (``max_steps``): the loop's last request ("The step budget is spent...",
  or "Too many steps in a row were refused..." when ``details.ended_by`` says so) comes before
  the final answer. It followed the last observation as a user turn of its own;
  it is joined to it with a blank line here, so that roles alternate (consecutive user turns
  are merged wherever they occur), which every chat template accepts. When the answer was
  taken from the last observation (``details.answer_from``), the final step's thought is
  dropped: it was a plan for another action, not the reason for this answer.
* **A correction replaces the final answer**: the last assistant message becomes
  ``Action: finish[<correction>]``, without the model's thought, which argued for the answer
  the user corrected (kept when the correction agrees with the model's answer). A run that
  ended without an answer (error, timeout, cancelled) qualifies with a correction.
* **PAL transcript**: the prompt exactly as ``build_messages`` writes it for the run's task
  (system message, the few-shot exemplar turns, ``Q: <question>``), then one assistant turn:
  a program whose result is the run's answer, fenced as the exemplars are (``fence``). The
  exemplar answers carry ``"weight": 0`` (OpenAI: not trained on; TRL ignores the key) so
  each record teaches its own program, not the exemplars again. Failed samples and repairs
  are not part of it: the target is the program that should have been written first. The
  verbalized sentence is not part of it either: it is a formatting call checked against the
  program's result. The program is found by its result (the last ``result:`` line of its
  observation, compared as the vote does, ``agents.pal.vote.agrees``); a PAL run corrected
  to an answer that none of its programs computed has no ``sft`` transcript: a prose answer
  would teach the PAL prompt to skip the program, and no program in the store computes it.
* **Threads**: a run in a thread (``thread_id``) kept what it saw of the thread in
  ``details.memory`` (``memory_record``); its transcript shows those turns before its
  question, rendered by the agents' own builders as the model saw them. A threaded run
  without it (stored before it was kept) has no ``sft`` or ``preference`` record: a
  follow-up question out of its conversation teaches the wrong thing. Runs that have not
  ended are left out too.

Preference pairs (``preference_records``), per question (whitespace and case ignored):

1. A corrected run against itself: the prompt is the run up to its final answer (all its
   steps, refused ones included: the prompt is not trained on and should be what the model
   saw), chosen ``Action: finish[<correction>]``, rejected ``Action: finish[<its answer>]``
   (both without the thought, so that the pair differs in the answer only). PAL: chosen a
   program of the run whose result is the correction, rejected the winning program.
2. Each liked run (score 1, no correction) against each disliked run (score -1), at most
   ``max_pairs_per_question`` pairs per question, spread over the runs (not all from the
   first liked run), all under the wording of the question's first run (the others differ
   from it in spacing and case only). Two runs are compared where they first differ: the
   prompt is everything they share (system and question, and any first steps they have in
   common), chosen and rejected are the two assistant messages that differ, so each answers
   the same prompt and neither holds an observation the model did not write. The liked run
   is taken without its refused steps (a refused step is never chosen), the disliked run as
   it was (an unparsable reply is a good rejected). Runs that differ first anywhere but at
   an assistant turn (other system prompts, modes or observations) make no pair, and a pair
   already made for the question (two runs with the same transcript) is not repeated.

Everything is deterministic (input order only, no clock, no randomness) and every record is
JSON-serialisable.
"""

from __future__ import annotations

import ast
import copy
import json
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agents.memory import Memory, Turn
from agents.pal import prompt as pal_prompt
from agents.pal.vote import agrees
from agents.policy import FINISH
from agents.react import prompt as react_prompt
from agents.react.prompt import FINISH_DOC, ActionDoc
from agents.untrusted import defang_template_tokens
from tools.base import Tool
from tools.python_tool import PythonTool
from tools.search.tool import SearchTool

Run = Mapping[str, Any]
Feedback = Mapping[str, Any]
Message = dict[str, Any]
Record = dict[str, Any]
ExportFormat = Literal["sft", "preference", "raw"]
FORMATS: tuple[ExportFormat, ...] = ("sft", "preference", "raw")

DEFAULT_ACTIONS: tuple[ActionDoc, ...] = tuple(
    ActionDoc(tool.name, tool.input_hint, tool.description) for tool in (PythonTool, SearchTool)
)
"""The built-in actions (``ALLOWED_ACTIONS``' default), in the registry's order."""

MAX_PAIRS_PER_QUESTION = 16
"""Liked-against-disliked pairs per question: n liked and m disliked runs would make n*m."""

_NOT_ENDED = frozenset({"queued", "running"})
_RESULT = "result: "  # how ExecutionResult.observation() shows a program's value


def action_docs(tools: Iterable[Tool], allowed: Collection[str]) -> list[ActionDoc]:
    """The actions a run's system prompt listed, as ``agents.factory`` builds it: the
    registry's tools (in its order) that the allow-list names. ``finish`` is added by the
    export; pass the server's registry and ``ALLOWED_ACTIONS``."""
    names = {name.strip().lower() for name in allowed}
    return [
        ActionDoc(tool.name, tool.input_hint, tool.description)
        for tool in tools
        if tool.name.lower() in names and tool.name.lower() != FINISH
    ]


# -- sft ------------------------------------------------------------------------------------


def sft_record(
    run: Run, feedback: Feedback | None, *, actions: Sequence[ActionDoc] = DEFAULT_ACTIONS
) -> Record | None:
    """``{"messages": [...]}`` for a run scored 1 or corrected; None when it does not qualify
    (no feedback, a negative score without a correction, no answer and no correction, a PAL
    run with no program that computes the answer, a run in a thread or not ended). See the
    module docstring for what the transcript holds and why."""
    if feedback is None or not _exportable(run):
        return None
    correction = _correction(feedback)
    if correction is None and feedback.get("score") != 1:
        return None
    mode = run.get("mode")
    if mode == "react":
        messages = _react_sft(run, correction, actions)
    elif mode == "pal":
        messages = _pal_sft(run, correction)
    else:
        return None
    return {"messages": messages} if messages is not None else None


def _react_sft(
    run: Run, correction: str | None, actions: Sequence[ActionDoc]
) -> list[Message] | None:
    conversation = _react_conversation(run, actions, keep_refused=False)
    final = conversation.final
    if correction is not None:
        keep_thought = final is not None and agrees(final.action_input, correction)
        last = _step_text(final.thought if final and keep_thought else "", FINISH, correction)
    elif final is not None:
        last = final.text
    else:
        return None
    return _alternate([*conversation.context, _message("assistant", last)])


def _pal_sft(run: Run, correction: str | None) -> list[Message] | None:
    target = correction if correction is not None else _pal_value(run)
    prompt = _pal_prompt(run, weighted=True)
    program = _pal_program_for(run, target) if target is not None else None
    if prompt is None or program is None:
        return None
    return [*prompt, _message("assistant", pal_prompt.fence(program))]


# -- preference -----------------------------------------------------------------------------


def preference_records(
    runs_with_feedback: Iterable[tuple[Run, Feedback | None]],
    *,
    actions: Sequence[ActionDoc] = DEFAULT_ACTIONS,
    max_pairs_per_question: int = MAX_PAIRS_PER_QUESTION,
) -> Iterator[Record]:
    """``{"prompt", "chosen", "rejected"}`` pairs, question by question in order of first
    appearance: each corrected run's pair, then liked against disliked runs (at most
    ``max_pairs_per_question``). The rows are read in full first (runs are grouped by
    question); see the module docstring for how each pair is made."""
    groups: dict[str, list[tuple[Run, Feedback]]] = {}
    for run, feedback in runs_with_feedback:
        if feedback is None or not _exportable(run):
            continue
        groups.setdefault(_question_key(run["question"]), []).append((run, feedback))
    for members in groups.values():
        seen: set[str] = set()  # runs with the same transcript make the same pair: once
        for run, feedback in members:
            correction = _correction(feedback)
            if correction is not None:
                pair = _corrected_pair(run, correction, actions)
                if pair is not None and _first_time(pair, seen):
                    yield pair
        # One wording for the group (its first run's), so that the prompts can be the same.
        wording = {"question": members[0][0]["question"]}
        liked = [
            transcript
            for run, feedback in members
            if feedback.get("score") == 1 and _correction(feedback) is None
            if (transcript := _transcript({**run, **wording}, actions, keep_refused=False))
        ]
        disliked = [
            transcript
            for run, feedback in members
            if feedback.get("score") == -1
            if (transcript := _transcript({**run, **wording}, actions, keep_refused=True))
        ]
        # Runs with the same transcript make the same pairs: each transcript once, and a
        # bounded number of tries (500 liked x 500 disliked copies of one answer tried all
        # 250,000 pairs, seconds on the event loop).
        liked, disliked = _distinct(liked), _distinct(disliked)
        made = 0
        for tried, (i, j) in enumerate(_spread(len(liked), len(disliked))):
            if made >= max_pairs_per_question or tried >= _TRIES_PER_PAIR * max_pairs_per_question:
                break
            pair = _first_difference(liked[i], disliked[j])
            if pair is not None and _first_time(pair, seen):
                made += 1
                yield pair


def _corrected_pair(run: Run, correction: str, actions: Sequence[ActionDoc]) -> Record | None:
    if run.get("mode") == "pal":
        value = _pal_value(run)
        prompt = _pal_prompt(run, weighted=False)
        if value is None or prompt is None:
            return None
        better = _pal_program_for(run, correction)
        worse = _pal_program_for(run, value)
        if better is None or worse is None or better == worse:
            return None  # the same program when the correction agrees with the run's value
        chosen, rejected = pal_prompt.fence(better), pal_prompt.fence(worse)
        return _pair_record(prompt, chosen, rejected)
    if run.get("mode") != "react":
        return None
    conversation = _react_conversation(run, actions, keep_refused=True)
    final = conversation.final
    if final is None or agrees(final.action_input, correction):
        return None
    chosen = _step_text("", FINISH, correction)
    rejected = _step_text("", FINISH, final.action_input)
    return _pair_record(_alternate(conversation.context), chosen, rejected)


def _pair_record(prompt: list[Message], chosen: str, rejected: str) -> Record:
    return {
        "prompt": prompt,
        "chosen": [_message("assistant", chosen)],
        "rejected": [_message("assistant", rejected)],
    }


def _first_difference(chosen: list[Message], rejected: list[Message]) -> Record | None:
    """The pair where two transcripts first differ, when that is an assistant turn of each."""
    shared = 0
    while shared < len(chosen) and shared < len(rejected) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0 or shared >= len(chosen) or shared >= len(rejected):
        return None
    better, worse = chosen[shared], rejected[shared]
    if better["role"] != "assistant" or worse["role"] != "assistant":
        return None
    return _pair_record(chosen[:shared], better["content"], worse["content"])


_TRIES_PER_PAIR = 8  # pairs looked at for each one a question may give


def _distinct(transcripts: list[list[Message]]) -> list[list[Message]]:
    """Each transcript once, in order."""
    seen: set[str] = set()
    kept = []
    for transcript in transcripts:
        key = json.dumps(transcript, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(transcript)
    return kept


def _first_time(pair: Record, seen: set[str]) -> bool:
    key = json.dumps(pair, sort_keys=True)
    if key in seen:
        return False
    seen.add(key)
    return True


def _spread(rows: int, columns: int) -> Iterator[tuple[int, int]]:
    """Every (row, column) pair, square shell by square shell ((0,0); (1,0) (0,1) (1,1); ...),
    so that a cap takes pairs from many runs rather than all from the first."""
    for k in range(max(rows, columns)):
        if k < rows:
            for j in range(min(k, columns)):
                yield k, j
        if k < columns:
            for i in range(min(k + 1, rows)):
                yield i, k


def _transcript(
    run: Run, actions: Sequence[ActionDoc], *, keep_refused: bool
) -> list[Message] | None:
    """The whole conversation of a run, as far as it got (for comparing two runs)."""
    if run.get("mode") == "pal":
        prompt = _pal_prompt(run, weighted=False)
        # A liked run offers only its winning program; a disliked one whatever it answered.
        program = _pal_winner_or_first(run) if keep_refused else _pal_winner(run)
        if prompt is None or program is None:
            return None
        return [*prompt, _message("assistant", program)]
    if run.get("mode") != "react":
        return None
    conversation = _react_conversation(run, actions, keep_refused=keep_refused)
    if conversation.final is None:
        if not keep_refused:
            return None  # a liked run without an answer has nothing to prefer
        return _alternate(conversation.steps_only)
    return _alternate([*conversation.context, _message("assistant", conversation.final.text)])


# -- raw and lines --------------------------------------------------------------------------


def raw_record(run: Run, feedback: Feedback | None) -> Record:
    """The stored run, unchanged, with its feedback (or None) under ``"feedback"``; a copy,
    so that a caller may change it without touching the store's rows."""
    record: Record = copy.deepcopy(dict(run))
    record["feedback"] = copy.deepcopy(dict(feedback)) if feedback is not None else None
    return record


def export_records(
    fmt: ExportFormat,
    runs_with_feedback: Iterable[tuple[Run, Feedback | None]],
    *,
    actions: Sequence[ActionDoc] = DEFAULT_ACTIONS,
    max_pairs_per_question: int = MAX_PAIRS_PER_QUESTION,
) -> Iterator[Record]:
    """The records of one export format, for the route: feed them to ``jsonl``."""
    if fmt == "raw":
        for run, feedback in runs_with_feedback:
            yield raw_record(run, feedback)
    elif fmt == "sft":
        for run, feedback in runs_with_feedback:
            if (record := sft_record(run, feedback, actions=actions)) is not None:
                yield record
    elif fmt == "preference":
        yield from preference_records(
            runs_with_feedback, actions=actions, max_pairs_per_question=max_pairs_per_question
        )
    else:
        raise ValueError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")


# Breaks that str.splitlines() and JavaScript see inside a line, which json.dumps leaves raw
# when ensure_ascii is off; escaped, so that every reader sees one record per line.
_HIDDEN_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def jsonl(records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """One line per record, ``\\n``-terminated, with no line break inside it. Strict JSON:
    a non-finite float (which Python would write as ``NaN``) is written as a string."""
    for record in records:
        try:
            text = json.dumps(record, ensure_ascii=False, allow_nan=False)
        except ValueError:
            text = json.dumps(_finite(record), ensure_ascii=False, allow_nan=False)
        for char, escaped in _HIDDEN_BREAKS.items():
            text = text.replace(char, escaped)
        yield text + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


# -- ReAct ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Step:
    thought: str
    action: str | None
    action_input: str
    observation: str | None

    @property
    def text(self) -> str:
        """What the model wrote: the raw reply when it could not be parsed."""
        if self.action is None:
            return defang_template_tokens(self.thought.strip())
        return _step_text(self.thought, self.action, self.action_input)


@dataclass(frozen=True, slots=True)
class _Conversation:
    context: list[Message]  # the prompt before the final answer (ends with a user turn)
    steps_only: list[Message]  # the same without the budget-spent request
    final: _Step | None  # the run's accepted finish, when it has one


def _react_conversation(
    run: Run, actions: Sequence[ActionDoc], *, keep_refused: bool
) -> _Conversation:
    details = run.get("details") or {}
    unavailable = details.get("unavailable_actions") or {}
    docs = [doc for doc in actions if doc.name != FINISH and doc.name not in unavailable]
    messages = [
        _message("system", react_prompt.text_system_prompt([*docs, FINISH_DOC])),
        *(
            _message(m.role, m.content)
            for m in react_prompt.conversation(run["question"], _memory_of(run), native=False)
        ),
    ]
    steps = [_read_step(raw) for raw in run.get("steps") or []]
    final: _Step | None = None
    if steps and _is_answer(steps[-1]):
        final = steps.pop()
        if details.get("answer_from") == "observation":
            # Its thought was a plan for another action; the answer came from an observation.
            final = _Step("", final.action, final.action_input, final.observation)
    for step in steps:
        if step.observation is None:
            continue  # cut off while its action ran: never answered
        if not keep_refused and _refused(step):
            continue
        messages.append(_message("assistant", step.text))
        messages.append(_message("user", react_prompt.observation_message(step.observation)))
    context = list(messages)
    if run.get("status") == "max_steps":
        refused = details.get("ended_by") is not None  # its refusals in a row ended it
        context.append(_message("user", react_prompt.final_answer_request(refused=refused)))
    return _Conversation(context, messages, final)


def _read_step(raw: Mapping[str, Any]) -> _Step:
    action = raw.get("action")
    return _Step(
        thought=str(raw.get("thought") or ""),
        action=str(action) if action is not None else None,
        action_input=str(raw.get("action_input") or ""),
        observation=str(raw["observation"]) if raw.get("observation") is not None else None,
    )


def _is_answer(step: _Step) -> bool:
    """The loop's accepted finish: it ends the run, so nothing observes it."""
    return step.action == FINISH and step.observation is None and bool(step.action_input.strip())


def _refused(step: _Step) -> bool:
    """Whether the loop refused the step (``agents.react.loop``: ``run`` and ``_act``)."""
    if step.action is None:
        return True  # unparsable: "Your last reply could not be used: ..."
    if step.action == FINISH:
        return True  # only an accepted finish goes unobserved, and it is the run's last step
    observation = step.observation or ""
    return observation.startswith(
        (
            f"action {step.action!r} is not allowed;",  # ActionNotAllowed
            f"{step.action} is unavailable in this run (",
            f"You already ran {step.action} with this input;",
        )
    )


def _step_text(thought: str, action: str, action_input: str) -> str:
    """A step as the protocol writes it (the prompt's examples): a multi-line input between
    brackets on lines of their own, no ``Thought:`` line when there was no thought."""
    value = action_input.strip("\n")
    call = f"Action: {action}[\n{value}\n]" if "\n" in value else f"Action: {action}[{value}]"
    said = f"Thought: {thought.strip()}\n{call}" if thought.strip() else call
    return defang_template_tokens(said)


# -- PAL ------------------------------------------------------------------------------------


def _pal_prompt(run: Run, *, weighted: bool) -> list[Message] | None:
    task = (run.get("details") or {}).get("task") or pal_prompt.DEFAULT_TASK
    if task not in pal_prompt.TASKS:
        return None  # a family this version does not have: its prompt cannot be rebuilt
    messages = []
    for message in pal_prompt.build_messages(run["question"], task, _memory_of(run)):
        entry = _message(message.role, message.content)
        if weighted and message.role == "assistant":
            entry["weight"] = 0  # an exemplar: part of the prompt, not this run's answer
        messages.append(entry)
    return messages


def _pal_value(run: Run) -> Any:
    """The voted value of a PAL run that finished, else None."""
    if run.get("status") != "finished":
        return None
    return (run.get("details") or {}).get("value")


def _pal_program_for(run: Run, target: Any) -> str | None:
    """The first program of the run whose result agrees with ``target``: of those the run
    recorded as returning a value (``details.returned``, step numbers from 1), when it did
    (a failed program's own message may end like a result: ``raise ValueError('\\nresult:
    42 #')``); the run's answer is the program it recorded (``details.answered_by``)."""
    details = run.get("details") or {}
    steps = run.get("steps") or []
    answered_by = details.get("answered_by")
    if type(answered_by) is int and 0 < answered_by <= len(steps) and _is_agreed(run, target):
        raw = steps[answered_by - 1]
        program = raw.get("action_input")
        return str(program) if raw.get("action") == "python" and program else None
    returned = details.get("returned")
    trusted = {n for n in returned if type(n) is int} if isinstance(returned, list) else None
    for number, raw in enumerate(steps, start=1):
        program = raw.get("action_input")
        if raw.get("action") != "python" or not program or raw.get("observation") is None:
            continue
        if trusted is not None and number not in trusted:
            continue
        result = _program_result(str(raw["observation"]))
        if result is not None and agrees(result, target):
            return str(program)
    return None


def _is_agreed(run: Run, target: Any) -> bool:
    """``target`` is the value the run answered with (not a correction of it)."""
    value = _pal_value(run)
    return value is not None and agrees(value, target)


def answering_program(run: Run) -> str | None:
    """The program whose result a finished PAL run answered with (what a follow-up question
    in its thread builds on), else None."""
    if run.get("mode") != "pal":
        return None
    value = _pal_value(run)
    return _pal_program_for(run, value) if value is not None else None


def _pal_winner(run: Run) -> str | None:
    """The fenced program whose result the run answered with, if it answered."""
    value = _pal_value(run)
    program = _pal_program_for(run, value) if value is not None else None
    return pal_prompt.fence(program) if program is not None else None


def _pal_winner_or_first(run: Run) -> str | None:
    """What a PAL run answered with (its winning program), else its first attempt (a failed
    program or a completion without one): a rejected answer either way."""
    if (winner := _pal_winner(run)) is not None:
        return winner
    for raw in run.get("steps") or []:
        if raw.get("action") == "python" and raw.get("action_input"):
            return pal_prompt.fence(str(raw["action_input"]))
        if raw.get("action") is None and str(raw.get("action_input") or "").strip():
            return defang_template_tokens(str(raw["action_input"]).strip())
    return None


def _program_result(observation: str) -> Any:
    """A program's value from its observation (``ExecutionResult.observation()``: output,
    then ``result: <repr>`` unless the output already shows it). A failed program's error
    text comes back as a string, which agrees with no value the vote could have picked."""
    text = observation.strip()
    if not text:
        return None
    last = text.rsplit("\n", 1)[-1]
    shown = last[len(_RESULT) :] if last.startswith(_RESULT) else text
    try:
        return ast.literal_eval(shown)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return shown


# -- shared ---------------------------------------------------------------------------------


def _exportable(run: Run) -> bool:
    """A run whose prompt can be rebuilt: ended, with a question, and in a thread only when
    it kept the memory it saw (``details.memory``; runs from before that did not)."""
    return (
        run.get("status") not in _NOT_ENDED
        and (not run.get("thread_id") or _memory_of(run) is not None)
        and isinstance(run.get("question"), str)
        and bool(run["question"].strip())
    )


def memory_record(memory: Memory) -> dict[str, Any]:
    """What a run saw of its thread, as JSON for its details (``_memory_of`` reads it)."""
    return {
        "summary": memory.summary,
        "turns": [
            {"question": t.question, "answer": t.answer, "program": t.program} for t in memory.turns
        ],
    }


def _memory_of(run: Run) -> Memory | None:
    record = (run.get("details") or {}).get("memory")
    if not isinstance(record, dict) or not isinstance(record.get("turns"), list):
        return None
    turns = tuple(
        Turn(str(t.get("question") or ""), t.get("answer"), t.get("program"))
        for t in record["turns"]
        if isinstance(t, dict)
    )
    summary = record.get("summary")
    return Memory(summary if isinstance(summary, str) else None, turns)


def _correction(feedback: Feedback) -> str | None:
    correction = feedback.get("correction")
    if not isinstance(correction, str) or not correction.strip():
        return None
    return correction.strip()


def _question_key(question: str) -> str:
    return " ".join(question.split()).casefold()


def _message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def _alternate(messages: list[Message]) -> list[Message]:
    """Consecutive user turns joined with a blank line: roles then alternate, as every chat
    template accepts (the budget-spent request follows an observation as a turn of its own)."""
    joined: list[Message] = []
    for message in messages:
        if joined and message["role"] == "user" and joined[-1]["role"] == "user":
            joined[-1] = _message("user", joined[-1]["content"] + "\n\n" + message["content"])
        else:
            joined.append(message)
    return joined
