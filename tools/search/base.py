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
    tolerates, which ``SearchTool`` then keeps by default (DuckDuckGo: 1 s; fakes: none).
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
_PROTOCOL_LINE = re.compile(
    r"^[\W_]*(thought|action(\s*input)?|observation|final\s*answer|question|answer)\s*\d*\s*:",
    re.IGNORECASE,
)
_KEEP = {"\n", "\t"}


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
    so a parser reading line starts never takes web text for the model's own step."""
    return f"> {line}" if _PROTOCOL_LINE.match(line) else line


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
