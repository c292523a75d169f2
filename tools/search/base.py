"""The search provider interface, its result type, and the helpers that make web text safe to
show the model.

A provider turns a query into a list of ``SearchResult``. It never raises anything but
``ToolError``: third-party errors are translated in the provider's own module.

    ToolError                  bad input (the model can fix its query)
    └── ToolUnavailable        network error, timeout, refused, unparsable answer
        └── SearchRateLimited  the engine said "too many requests"; ``SearchTool`` backs off,
                               then stops calling it for a cooldown period

Everything a provider returns is untrusted web text: ``clean_line`` and ``defuse_line`` make it
one plain line that cannot pose as a step of the ReAct text protocol.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tools.base import ToolUnavailable


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One hit, as the provider returned it (not yet cleaned)."""

    title: str
    snippet: str
    url: str


class SearchRateLimited(ToolUnavailable):
    """The search engine refused because of too many requests."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@runtime_checkable
class SearchProvider(Protocol):
    """A web search backend. One instance is shared by every request of the service.

    A provider may also have a ``min_interval_s`` attribute: the spacing between calls it
    tolerates, which ``SearchTool`` then keeps by default (DuckDuckGo: 1 s; fakes: none); and
    an ``async reachable(timeout_s)`` method that returns when the engine can be reached and
    raises ``ToolUnavailable`` saying why not, without spending a query (``SearchTool`` uses
    it to keep ``search`` out of runs while it is down).
    """

    @property
    def name(self) -> str:
        """Short name for messages and logs, e.g. ``duckduckgo``."""
        ...

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        """Return at most ``max_results`` hits; ``[]`` when there are none.

        Raises ``SearchRateLimited``, ``ToolUnavailable`` or ``ToolError`` only."""
        ...

    async def aclose(self) -> None:
        """Release connections (called from the app's lifespan)."""
        ...


# Words that start a step of the ReAct text protocol (optionally numbered, as in the paper's
# prompts: "Action 2:"). Untrusted text must never start a line with one of them.
_PROTOCOL_LINE = re.compile(  # after any prefix of non-word characters and numbers ("1. ",
    # "[2] ": red-team pass CV), taken possessively: a long run of digits cannot backtrack
    r"^[\W_]*+(?:\d++[\W_]*+)*+"
    r"(thought|action(\s*input)?|observation|final\s*answer|question|answer)"
    r"\s*(?:\d+\s*)?:",  # one way to read a run of blanks: \s*\d*\s* had n of them
    re.IGNORECASE,
)
_KEEP = {"\n", "\t"}
# Letters and colons that read as Latin ones but that NFKC leaves alone: a label spelled with
# them still reads as a label (a Cyrillic capital O in "Observation:").
_LOOKALIKES = str.maketrans(
    # Cyrillic A a B E e K M H O o P p C c T y X x I i S s J j d h q W w
    "\u0410\u0430\u0412\u0415\u0435\u041a\u041c\u041d\u041e\u043e\u0420\u0440\u0421\u0441\u0422"
    "\u0443\u0425\u0445\u0406\u0456\u0405\u0455\u0408\u0458\u0501\u04bb\u051b\u051c\u051d"
    # Greek A B E H I K M N O o P T Y X Z v i
    "\u0391\u0392\u0395\u0397\u0399\u039a\u039c\u039d\u039f\u03bf\u03a1\u03a4\u03a5\u03a7\u0396"
    "\u03bd\u03b9"
    # colons: modifier letter colon, ratio, triangular colon
    "\ua789\u2236\u02d0",
    "AaBEeKMHOoPpCcTyXxIiSsJjdhqWwABEHIKMNOoPTYXZvi:::",
)


def bounded(text: str, limit: int | None) -> str:
    """The part of untrusted ``text`` worth cleaning for a result of ``limit`` characters:
    cleaning only shrinks text, so a few times the limit is plenty, and nothing larger is
    ever walked character by character (a 4 MB snippet took 1.1 s on the event loop)."""
    if limit is None:
        return text
    return text[: 4 * max(limit, 0) + 256]


def clean_line(text: str, limit: int | None = None) -> str:
    """One line of plain text: control and format characters dropped, whitespace collapsed.
    With ``limit``, only the start of ``text`` that can matter for it is looked at."""
    return " ".join(_drop_controls(bounded(text, limit), keep=set()).split())


def clean_block(text: str, limit: int | None = None) -> str:
    """Multi-line text: controls dropped, spaces collapsed per line, blank runs squeezed, and
    every line defused. With ``limit``, as for :func:`clean_line`."""
    text = bounded(text, limit)
    lines = (clean_line(line) for line in _drop_controls(text, keep=_KEEP).split("\n"))
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(defuse_line(line))
    return "\n".join(out).strip("\n")


def defuse_line(line: str) -> str:
    """Neutralise a line that starts like a protocol step (``Observation: ...``) by quoting it,
    so a parser reading line starts never takes web text for the model's own step. The label
    is recognised in fullwidth or mathematical letters and in Cyrillic or Greek lookalikes
    too (:func:`label_skeleton`)."""
    return f"> {line}" if _PROTOCOL_LINE.match(label_skeleton(line)) else line


# Letters that show as nothing (Hangul fillers): a line starting with one looks like the next
# character's line to a reader, and to a model.
_BLANK_LETTERS = str.maketrans(dict.fromkeys("\u115f\u1160\u3164\uffa0", " "))


def label_skeleton(line: str) -> str:
    """``line`` as a reader sees its letters: NFKC (fullwidth and mathematical letters,
    no-break spaces) and Latin for the Cyrillic and Greek lookalikes. Only for recognising
    labels."""
    text = unicodedata.normalize("NFKC", line).translate(_LOOKALIKES)
    if not text.isascii():  # accents (Áction) and blank-looking Hangul fillers, off
        text = unicodedata.normalize("NFD", text).translate(_BLANK_LETTERS)
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return text


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, ending with ``…``."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _drop_controls(text: str, *, keep: set[str]) -> str:
    # Cc (controls, incl. \x1b escapes) and Cf (zero-width and bidi overrides) are replaced by
    # spaces; Zl/Zp (U+2028/U+2029) become newlines when lines are kept.
    chars: list[str] = []
    for ch in text.replace("\r\n", "\n").replace("\r", "\n"):
        if ch in keep:
            chars.append(ch)
            continue
        category = unicodedata.category(ch)
        if category in ("Zl", "Zp"):
            chars.append("\n" if "\n" in keep else " ")
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            chars.append(" ")
        else:
            chars.append(ch)
    return "".join(chars)
