"""Cutting a document's text into passages: LangChain's recursive splitter, structure-aware for
Markdown (and HTML, which ``extract.html_text`` turns into Markdown-like text), with overlap,
each passage keeping its page, its character offsets in that page's text and the headings it
sits under."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tools.retrieve.extract import IngestError, Kind, Section

CHUNK_CHARS = 800
OVERLAP_CHARS = 120
MIN_CHUNK_CHARS = 200  # smaller pieces join a neighbour (_merge_small)
# The closing #s and blanks are stripped in Python: "(.+?)[ \t#]*$" tried the trailing run
# once per character (a 60 KB heading line held the service for 14 s).
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+)$", re.M)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One passage: ``start``/``end`` are offsets in its section's text (its page for a PDF)."""

    text: str
    page: int | None
    start: int
    end: int
    heading: str | None


def chunk(
    sections: Sequence[Section],
    kind: Kind,
    *,
    size: int = CHUNK_CHARS,
    overlap: int = OVERLAP_CHARS,
    max_chunks: int = 20_000,
) -> list[Chunk]:
    """The passages of a document, in order. Raises ``IngestError(413)`` past ``max_chunks``."""
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    structured = kind in ("markdown", "html")
    if structured:
        splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=size, chunk_overlap=overlap, add_start_index=True
        )
    else:
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=size, chunk_overlap=overlap, add_start_index=True
        )
    chunks: list[Chunk] = []
    for section in sections:
        headings = _headings(section.text) if structured else None
        spans = [
            (start, start + len(document.page_content))
            for document in splitter.create_documents([section.text])
            if (start := int(document.metadata.get("start_index", -1))) >= 0
        ]
        for start, end in _merge_small(spans, min_chars=min(size // 4, MIN_CHUNK_CHARS), size=size):
            heading = headings.at(start) if headings is not None else None
            chunks.append(Chunk(section.text[start:end], section.page, start, end, heading))
            if len(chunks) > max_chunks:
                raise IngestError(
                    413, f"the document makes more than {max_chunks} passages; split it"
                )
    return chunks


def _merge_small(
    spans: list[tuple[int, int]], *, min_chars: int, size: int
) -> list[tuple[int, int]]:
    """Spans with the small ones joined to their neighbour. The splitter leaves pieces such as
    a heading alone before a long paragraph, or a signature line at the end: as passages of
    their own they hold no answer, yet one matching word in five makes BM25 rank them first.
    A small piece joins the next one (or, at the end, the previous one) while the join stays
    within one and a half chunks."""
    merged: list[tuple[int, int]] = []
    pending: tuple[int, int] | None = None
    for start, end in spans:
        if pending is not None:
            if end - pending[0] <= size * 3 // 2:
                start = pending[0]
            else:
                merged.append(pending)
            pending = None
        if end - start < min_chars:
            pending = (start, end)
        else:
            merged.append((start, end))
    if pending is not None:
        if merged and pending[1] - merged[-1][0] <= size * 3 // 2:
            merged[-1] = (merged[-1][0], max(merged[-1][1], pending[1]))
        else:
            merged.append(pending)
    return merged


class _Headings:
    """Where each Markdown heading starts, to tell the headings a passage sits under."""

    def __init__(self, found: list[tuple[int, int, str]]) -> None:
        self._starts = [start for start, _, _ in found]
        # The trail under each heading, made once (a passage's lookup is then a bisect: read
        # again from the first heading for every passage, 1 MB of headings took 30 s).
        self._trails: list[str | None] = []
        trail: list[tuple[int, str]] = []
        for _, level, title in found:
            while trail and trail[-1][0] >= level:
                trail.pop()
            trail.append((level, title))
            self._trails.append(" / ".join(title for _, title in trail) or None)

    def at(self, offset: int) -> str | None:
        """``"Title / Section / Subsection"`` for text starting at ``offset``, or None."""
        index = bisect.bisect_right(self._starts, offset)
        return self._trails[index - 1] if index else None


def _headings(text: str) -> _Headings:
    found = []
    in_code = False
    position = 0
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_code = not in_code
        elif not in_code and (match := _HEADING.match(line.rstrip("\r\n"))):
            title = match.group(2).rstrip(" \t#").strip()[:200]
            found.append((position, len(match.group(1)), title))
        position += len(line)
    return _Headings(found)
