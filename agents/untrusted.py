"""Untrusted text made safe to put in a prompt: tool observations, and model text that may echo
them.

A prompt marks an observation by where it is: a message of its own that starts
``Observation:`` (text protocol) or a ``tool`` message (native calls). Two kinds of text inside
it could forge that boundary, and both are neutralised here:

* **A chat template's control tokens** (``<|im_end|>``, ``<|start_header_id|>``, ``[INST]``,
  ``<start_of_turn>``, ``<tool_call>`` ...). The embedded model (llama.cpp, ``special=True``)
  and most OpenAI-compatible servers tokenize the rendered prompt with special tokens parsed,
  so such text would end the observation's turn and open a system or assistant turn. A space
  is put after the opening bracket (``<|`` → ``< |``): still readable, never a token.
* **A line that starts like a step of the ReAct text protocol or a chat role**
  (``Observation: 42``, ``Action: finish[42]``, ``System:``), also when written with zero-width
  characters, bidi overrides, fullwidth or mathematical letters, Cyrillic or Greek lookalikes
  (``tools.search.base.label_skeleton``), or behind an exotic line break (CR, VT, FF, U+0085,
  U+2028 ...). Such a line is quoted with ``> ``, as ``tools.search`` does with web text.

Invisible format characters (Unicode Cf: zero-width, bidi controls, tag characters) and lone
surrogates are dropped, other control characters (ANSI escapes, NUL) become spaces, and every
line break becomes ``\\n``. Everything else is kept: the model still reads what the tool said.
This is only how the prompt shows the text; a run's steps keep the tool's own output.
"""

from __future__ import annotations

import re
import unicodedata

from tools.search.base import label_skeleton

# Every break str.splitlines() knows, which is also what a tokenizer or a reader may take for one.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")

# Words that start a step of the text protocol (optionally numbered: "Action 2:") or a turn of a
# plain-text transcript. Matched on the line's skeleton (below), after any prefix of non-word
# characters and numbers ("**", "### ", "- ", "-> ", "1. ", "2) ", the search formatter's own
# "[1] ": red-team pass CV), taken possessively so that a long run of digits cannot backtrack.
_STEP_LINE = re.compile(
    r"^[\W_]*+(?:\d++[\W_]*+)*+"
    r"(?:thought|action(?:\s*input)?|observation|final\s*answer|question|answer|"
    r"system|user|assistant|human|developer|tool)\s*(?:\d+\s*)?:",  # one way to read blanks
    re.IGNORECASE,
)
# Openings and closings of bar-delimited tokens: <|im_start|>, <|eot_id|>, DeepSeek's tokens
# with a fullwidth bar (U+FF5C), also with fullwidth or small angle brackets.
_BAR_OPEN = re.compile(r"([<\uff1c\ufe64])(?=[|\uff5c])")
_BAR_CLOSE = re.compile(r"(?<=[|\uff5c])([>\uff1e\ufe65])")
# Named tokens of common templates: Llama 2 and Mistral, Gemma, Hermes/Qwen tool tags, BOS/EOS.
_NAMED_TOKEN = re.compile(
    r"<(?=/?(?:s|bos|eos|pad|unk|start_of_turn|end_of_turn|tool_call|tool_response|think)>)"
    r"|<(?=</?SYS>>)"
    r"|\[(?=/?(?:INST|SYSTEM_PROMPT|TOOL_CALLS|TOOL_RESULTS|AVAILABLE_TOOLS|THINK)\])",
    re.IGNORECASE,
)


def defang_template_tokens(text: str) -> str:
    """``text`` with every chat-template control token broken by a space, nothing else
    changed. For text the model wrote itself (it may echo an observation's tokens)."""
    text = _BAR_OPEN.sub(r"\1 ", text)
    text = _BAR_CLOSE.sub(r" \1", text)
    return _NAMED_TOKEN.sub(lambda m: m.group() + " ", text)


def untrusted_text(text: str) -> str:
    """Untrusted ``text`` as a prompt may show it: no template tokens, no hidden or control
    characters, ``\\n`` line breaks only, and no line that poses as a protocol step or a role."""
    lines = [_visible(line) for line in _LINE_BREAK.split(text)]
    lines = defang_template_tokens("\n".join(lines)).split("\n")
    return "\n".join(f"> {line}" if _poses_as_a_step(line) else line for line in lines)


def _visible(line: str) -> str:
    chars = []
    for ch in line:
        category = unicodedata.category(ch)
        if category in ("Cf", "Cs"):
            continue
        chars.append(" " if category == "Cc" and ch != "\t" else ch)
    return "".join(chars)


def _poses_as_a_step(line: str) -> bool:
    skeleton = label_skeleton(line)
    if skeleton.lstrip().startswith(">"):  # already quoted: reads as data
        return False
    return _STEP_LINE.match(skeleton) is not None
