"""Parse one ReAct completion into (thought, action, input).

Accepted forms (the ReAct text protocol; the README summarises it):

    Thought: <free text>                 Thought 2: ...           (numbered, as in the paper)
    Action: <name>[<input>]              Action 2: Search[...]    (name is case-insensitive)
    Action: <name>                       Action: python
    Action Input: <input>                ```python ... ```        (a fenced block)
    Thought: <free text> Action: <name>[<input>]                    (one line)

The input runs from the first ``[`` after the name to the last ``]`` before the next protocol
line (``Observation``, ``Thought``, ``Action``) or the end, so it may span lines and contain
brackets. Everything after the first action (a hallucinated ``Observation:``, a second action)
is ignored. ``Final Answer: x`` (the LangChain style many models fall into) is read as
``finish[x]``. A completion with no usable action raises ``ParseError`` whose message tells the
model what to write instead; the loop decides whether prose (``is_prose``) is an answer.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass

from agents.errors import ParseError

# A label ("Thought:", "**Action 2:**"): no two runs of blanks side by side with only optional
# text between them, so a line of blanks costs one pass, not one per way to share it out.
_WORD_LABEL = r"(?:\*+[ \t]*)?(?:{word})[ \t]*(?:\d+[ \t]*)?(?:\*+[ \t]*)?:\**"
_LABEL = r"[ \t]*" + _WORD_LABEL
_THOUGHT = re.compile(r"^" + _LABEL.format(word="thought"), re.IGNORECASE | re.MULTILINE)
_REPEATED_THOUGHT = re.compile(
    r"^[ \t]*(?:" + _WORD_LABEL.format(word="thought") + r"\s*)+", re.IGNORECASE
)
_ACTION = re.compile(r"^" + _LABEL.format(word="action"), re.IGNORECASE | re.MULTILINE)
# The same label inside a line, after the thought: small models write the whole step on one
# line ("Thought: ... Action: python[...]").
_INLINE_ACTION = re.compile(r"(?<=[ \t])" + _WORD_LABEL.format(word="action"), re.IGNORECASE)
_ACTION_INPUT = re.compile(r"^" + _LABEL.format(word="action[ \t]+input"), re.I | re.M)
_FINAL_ANSWER = re.compile(r"^" + _LABEL.format(word="final[ \t]+answer"), re.I | re.M)
# A line that starts the next protocol element: the end of the first action's input.
_NEXT = re.compile(
    r"^" + _LABEL.format(word="observation|thought|action(?![ \t]+input)"), re.I | re.M
)
# Any protocol label at a line's start: a completion without one is prose.
_ANY_LABEL = re.compile(
    r"^" + _LABEL.format(word="thought|action|observation|final[ \t]+answer|question"), re.I | re.M
)
# An action written without its label ("python[...]" on a line of its own): not prose.
# An action's name: an identifier, or "server.tool" for an MCP server's tool.
_IDENT = r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)?"
_BARE_CALL = re.compile(r"^[ \t]*" + _IDENT + r"\[", re.MULTILINE)
_NAME = re.compile(r"[ \t]*`?(" + _IDENT + r")`?")
_FENCE = re.compile(r"```[ \t]*[\w+\-]*[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedStep:
    thought: str
    action: str  # lower-cased
    action_input: str


def is_prose(text: str) -> bool:
    """A completion with no protocol label anywhere ("The product is 7006652."): what small
    models write once they have what they need. Not a step, but it may be an answer."""
    if not text.strip():
        return False
    return not any(p.search(text) for p in (_ANY_LABEL, _INLINE_ACTION, _BARE_CALL))


def parse_completion(text: str) -> ParsedStep:
    """Parse the first action of a completion. Raises ``ParseError``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    matches = [m for m in (_ACTION.search(text), _INLINE_ACTION.search(text)) if m is not None]
    action_match = min(matches, key=lambda m: m.start()) if matches else None
    if action_match is None:
        final = _FINAL_ANSWER.search(text)
        if final is not None:
            answer = _until_next(text, final.end()).strip()
            return ParsedStep(_thought(text, final.start()), "finish", answer)
        raise ParseError(
            "no action found. Write exactly one step as 'Thought: <reasoning>' then "
            "'Action: <name>[<input>]'."
        )
    thought = _thought(text, action_match.start())
    name_match = _NAME.match(text, action_match.end())
    if name_match is None:
        raise ParseError("the Action line names no action. Write 'Action: <name>[<input>]'.")
    name = name_match.group(1).lower()
    action_input = _action_input(text, name_match.end(), name)
    return ParsedStep(thought, name, action_input)


def _thought(text: str, end: int) -> str:
    head = text[:end]
    labels = list(_THOUGHT.finditer(head))
    start = labels[-1].end() if labels else 0  # the last Thought label before the action
    return _REPEATED_THOUGHT.sub("", head[start:].strip()).strip()  # "Thought: Thought: x"


def _until_next(text: str, start: int) -> str:
    nxt = _NEXT.search(text, start)
    return text[start : nxt.start() if nxt else len(text)]


def _action_input(text: str, pos: int, name: str) -> str:
    rest_of_line_end = text.find("\n", pos)
    line_rest = text[pos : rest_of_line_end if rest_of_line_end >= 0 else len(text)]
    stripped = line_rest.lstrip()
    if stripped.startswith("["):
        body = _until_next(text, pos + line_rest.index("["))
        close = body.rfind("]")
        inner = body[1:close] if close > 0 else body[1:]
        return _clean(_unfence(inner))
    if stripped and not stripped.startswith("```"):
        # "Action: search: foo" or "Action: search foo": take the rest of the line.
        return stripped.lstrip(":").strip()
    after = text[pos:]
    input_match = _ACTION_INPUT.search(text, pos)
    if input_match is not None and not _NEXT.search(text[pos : input_match.start()]):
        return _clean(_unfence(_until_next(text, input_match.end())))
    fence = _FENCE.search(after)
    if fence is not None and not _NEXT.search(after[: fence.start()]):
        return _clean(fence.group(1))
    raise ParseError(
        f"action {name!r} has no input. Write 'Action: {name}[<input>]' with the input "
        "between square brackets."
    )


def _clean(value: str) -> str:
    """Strip surrounding blank space without breaking the indentation of code."""
    return textwrap.dedent(value.strip("\n")).strip()


def _unfence(value: str) -> str:
    """Inputs sometimes wrap code in a fenced block inside the brackets."""
    stripped = value.strip()
    if stripped.startswith("```"):
        fence = _FENCE.search(stripped)
        if fence is not None:
            return fence.group(1)
    return value


# -- the JSON protocol (AGENT_PROTOCOL=json) -------------------------------------------------

_JSON_FORMAT = (
    'Reply with exactly one JSON object: {"thought": "<reasoning>", "action": "<name>", '
    '"action_input": "<input>"}.'
)


def parse_json_step(text: str) -> ParsedStep:
    """Parse one JSON-protocol step. A server that enforces the schema returns the object
    alone; one that does not may wrap it in a code fence or prose, so the first JSON object
    in the text is taken. ``action_input`` may be a number or an object (a model filling in
    arguments): it is kept as its JSON text. Raises ``ParseError`` naming what to fix."""
    value = _first_json_object(text)
    if value is None:
        raise ParseError(f"no JSON object found. {_JSON_FORMAT}")
    action = value.get("action")
    if not isinstance(action, str) or not _IDENT_FULL.fullmatch(action.strip()):
        raise ParseError(f'the step has no "action" naming an action. {_JSON_FORMAT}')
    thought = value.get("thought")
    raw_input = value.get("action_input", value.get("input"))
    if raw_input is None:
        raise ParseError(f'the step has no "action_input". {_JSON_FORMAT}')
    if isinstance(raw_input, str):
        action_input = raw_input
    else:
        action_input = json.dumps(raw_input, ensure_ascii=False)
    name = action.strip().lower()
    action_input = _clean(_unfence(action_input))
    if name == "python":
        action_input = newlines_in_strings_escaped(action_input)
    return ParsedStep(thought.strip() if isinstance(thought, str) else "", name, action_input)


def newlines_in_strings_escaped(code: str) -> str:
    """``code`` with each line break inside a one-line string literal written as ``\\n``.

    In JSON, ``"'\\n'.join(parts)"`` is quote, line break, quote: a small model writing a
    program in a JSON step (or a tool call's arguments) means Python's ``'\\n'`` and gets an
    unterminated string, and it cannot see why from its own JSON (the 1.5B model repeated
    it to the step limit, red-team pass EZ). A line break inside a one-line string is never
    valid Python, so nothing valid changes: strings are found as Python's tokenizer finds
    them (prefixes, escapes, triple quotes, comments), and a backslash before the break is
    a line continuation, kept."""
    if "\n" not in code or ("'" not in code and '"' not in code):
        return code
    out: list[str] = []
    i, n = 0, len(code)
    quote: str | None = None  # the open string's delimiter: ' " ''' """
    while i < n:
        char = code[i]
        if quote is None:
            if char == "#":  # a comment, to its line's end
                end = code.find("\n", i)
                end = n if end < 0 else end
                out.append(code[i:end])
                i = end
                continue
            if char in "'\"":
                quote = char * 3 if code.startswith(char * 3, i) else char
                out.append(quote)
                i += len(quote)
                continue
            out.append(char)
            i += 1
            continue
        if char == "\\":  # an escape, or a line continuation: the next character is kept
            out.append(code[i : i + 2])
            i += 2
            continue
        if code.startswith(quote, i):
            out.append(quote)
            i += len(quote)
            quote = None
            continue
        if char == "\n" and len(quote) == 1:
            out.append("\\n")  # what the model wrote, before JSON read it
        else:
            out.append(char)
        i += 1
    return "".join(out)


_IDENT_FULL = re.compile(_IDENT)


def _first_json_object(text: str) -> dict[str, object] | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
