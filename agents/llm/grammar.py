"""GBNF grammars that make a small local model write one well-formed ReAct step.

``react_grammar(actions)`` returns a grammar for exactly::

    Thought: <one line, 1..max_thought_chars characters>
    Action: <one of actions>[<input>]

built per call from the run's allowed actions, so the model cannot even spell an action
outside the policy (the loop still checks: a grammar is a help, not a guard).

How the input ends is the delicate part. The contract lets an input span lines and contain
brackets (``python[xs = [1, 2]\\nprint(xs[0])]``), so "up to the first ``]``" is wrong, and "any
text" never ends (the model would ramble until ``max_tokens`` or invent an ``Observation``).
Here brackets must balance: the input is a sequence of non-bracket characters and nested
``[...]`` groups, and the first ``]`` at depth zero closes the action; then the grammar is
complete (at most two newlines may follow) and the only token left to sample is end-of-text,
so generation stops right there.
For code actions (``python`` by default) brackets inside string literals and ``#`` comments do
not count, so ``print("]")`` and ``# see [1`` are fine; a string may not span lines (triple-
quoted multi-line strings are not expressible; the model is steered to single-line strings).
For other actions (``search``, ``finish``, ...) only bracket balance applies.

Rule names in GBNF allow letters, digits and ``-`` only.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

# A plain identifier, or "server.tool" (an MCP server's tool; tools.mcp_tool).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_-]{0,63})?")

# Balanced brackets only: search queries, final answers, any non-code input.
_TEXT_RULES = r"""
text ::= ( [^\[\]] | "[" text "]" )*
"""

# Balanced brackets outside string literals and comments: Python source.
_CODE_RULES = r"""
code ::= ( [^\[\]"'#] | "[" code "]" | dq-string | sq-string | comment )*
dq-string ::= "\"" ( [^"\\\n] | "\\" [^\n] )* "\""
sq-string ::= "'" ( [^'\\\n] | "\\" [^\n] )* "'"
comment ::= "#" [^\n]*
"""


def react_grammar(
    actions: Sequence[str],
    max_thought_chars: int = 400,
    *,
    code_actions: Collection[str] = ("python",),
) -> str:
    """A GBNF grammar for one ``Thought:``/``Action: name[input]`` step.

    ``actions`` are the allowed action names, written as given (the parser is
    case-insensitive, the grammar is not). ``code_actions`` (compared case-insensitively)
    get the Python-aware input rule. Raises ``ValueError`` on an empty list, a name that is
    not a plain identifier, or a thought cap below 1.
    """
    if not actions:
        raise ValueError("react_grammar needs at least one action")
    if max_thought_chars < 1:
        raise ValueError("max_thought_chars must be at least 1")
    names = list(dict.fromkeys(actions))
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"action name {name!r} is not a plain identifier")
    code = {c.lower() for c in code_actions}

    alternatives = []
    uses_code = uses_text = False
    for name in names:
        if name.lower() in code:
            alternatives.append(f'"{name}[" code "]"')
            uses_code = True
        else:
            alternatives.append(f'"{name}[" text "]"')
            uses_text = True

    lines = [
        r'root ::= "Thought: " thought "\nAction: " action end',
        # One line; after the cap only the newline before "Action:" is possible.
        rf"thought ::= [^\n]{{1,{max_thought_chars}}}",
        "action ::= " + " | ".join(alternatives),
        # Up to two newlines may follow the closing bracket: tokenizers merge "]\n" into one
        # token, and a grammar that refused it made the model skip the "]" and run on inside
        # the input. Then only end-of-text is left, so generation stops.
        r'end ::= ("\n" "\n"?)?',
    ]
    grammar = "\n".join(lines) + "\n"
    if uses_code:
        grammar += _CODE_RULES.lstrip("\n")
    if uses_text:
        grammar += _TEXT_RULES.lstrip("\n")
    return grammar
