"""Text a model, a program, a web page or an uploaded document wrote goes through regular
expressions in the service's process: each must read it in one pass. A pattern that can share
a run of digits or blanks out in many ways takes time quadratic in its length (red-team pass M:
a PAL result of 20,000 digits and an "x" held every user's requests for 22 s while two samples
were voted on; pass Q: "action" and 120,000 blanks in an earlier turn of an OpenAI
conversation, 32 s; a Markdown heading line of 60 KB, 14 s, the GIL held by a thread; a PAL
completion's line of code and 50,000 blank lines, 3.8 s in the extractor's search for an
indented ``return``).

Not a benchmark: the inputs are long enough (50,000 characters) that a quadratic pattern takes
minutes, where a linear one takes milliseconds; the bound is a thousand times the latter.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from agents.answer import normalise
from agents.errors import ParseError
from agents.pal.extract import extract_program
from agents.pal.vote import agrees, as_number, majority_vote
from agents.react.parser import is_prose, parse_completion, parse_json_step
from agents.untrusted import untrusted_text
from tools.retrieve.chunk import chunk
from tools.retrieve.extract import Section
from tools.search.base import clean_block, defuse_line

SIZE = 50_000
BOUND_S = 2.0

# Runs of what the patterns read (digits, blanks, label characters), each ended by what makes
# a match fail late.
RUNS = {
    f"{start!r}_{name}_then_{end_name}": start + piece * (SIZE // len(piece)) + end
    for start in ("", "action", "# x", "Thought 1", "**", "x = 1\n")
    for name, piece in {
        "digits": "1",
        "spaces": " ",
        "tabs": "\t",
        "newlines": "\n",
        "stars": "*",
        "digits_and_commas": "1,",
        "digits_and_points": "1.",
        "spaced_digits": "1 ",
        "dollars": "$ ",
        "words": "thought ",
        "labels": "Thought: ",
    }.items()
    for end_name, end in {"x": "x", "nothing": ""}.items()
}

READERS: dict[str, Callable[[str], object]] = {
    "parse_completion": parse_completion,
    "parse_json_step": parse_json_step,
    "is_prose": is_prose,
    "as_number": as_number,
    "agrees": lambda text: agrees(text, text + "!"),
    "majority_vote": lambda text: majority_vote([text, text + "!", "8"]),
    "normalise": lambda text: normalise("How much does it cost?", text, [text]),
    "extract_program": extract_program,
    "untrusted_text": untrusted_text,
    "defuse_line": defuse_line,
    "clean_block": clean_block,
    "chunk_markdown": lambda text: chunk([Section(text)], "markdown", max_chunks=10**6),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_untrusted_text_is_read_in_one_pass(reader: str) -> None:
    read = READERS[reader]
    slowest, which = 0.0, ""
    for name, text in RUNS.items():
        started = time.perf_counter()
        with contextlib.suppress(ParseError, ValueError):  # refusing it is fine: only time counts
            read(text)
        elapsed = time.perf_counter() - started
        if elapsed > slowest:
            slowest, which = elapsed, name
    assert slowest < BOUND_S, f"{reader} took {slowest:.1f} s on {which}"
