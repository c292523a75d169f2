"""Cutting a document's text into passages: LangChain's recursive splitter, structure-aware for
Markdown (and HTML, which ``extract.html_text`` turns into Markdown-like text), with overlap,
each passage keeping its page, its character offsets in that page's text and the headings it
sits under."""

from __future__ import annotations

import asyncio
import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tools.retrieve.extract import (
    CUT_IN_CHILD_CHARS,
    IngestError,
    Kind,
    Section,
    has_text,
    parse_in_child,
    sections,
)

CHUNK_CHARS = 800
OVERLAP_CHARS = 120
MIN_CHUNK_CHARS = 200  # smaller pieces join a neighbour (_merge_small)
MAX_CHUNKS = 20_000
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
    max_chunks: int = MAX_CHUNKS,
) -> list[Chunk]:
    """The passages of a document, in order. Raises ``IngestError(413)`` past ``max_chunks``."""
    return [
        piece for _, piece in cut(sections, kind, size=size, overlap=overlap, max_chunks=max_chunks)
    ]


def cut(
    sections: Sequence[Section],
    kind: Kind,
    *,
    size: int = CHUNK_CHARS,
    overlap: int = OVERLAP_CHARS,
    max_chunks: int = MAX_CHUNKS,
) -> list[tuple[int, Chunk]]:
    """``chunk``'s passages, each with the index of the section it was cut from."""
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
    chunks: list[tuple[int, Chunk]] = []
    for index, section in enumerate(sections):
        headings = _headings(section.text) if structured else None
        spans = [
            (start, start + len(document.page_content))
            for document in splitter.create_documents([section.text])
            if (start := int(document.metadata.get("start_index", -1))) >= 0
        ]
        for start, end in _merge_small(spans, min_chars=min(size // 4, MIN_CHUNK_CHARS), size=size):
            heading = headings.at(start) if headings is not None else None
            chunks.append(
                (index, Chunk(section.text[start:end], section.page, start, end, heading))
            )
            if len(chunks) > max_chunks:
                raise IngestError(
                    413, f"the document makes more than {max_chunks} passages; split it"
                )
    return chunks


async def passages(
    data: bytes, kind: Kind, *, max_pages: int, timeout_s: float
) -> tuple[list[Section], list[Chunk]]:
    """A file's text and its passages. A long text is cut in the parsing child (see
    ``extract``), a short one on a thread. Raises ``IngestError``."""
    if kind in ("text", "markdown") and len(data) <= CUT_IN_CHILD_CHARS:
        found = await sections(data, kind, max_pages=max_pages, timeout_s=timeout_s)
        return found, await asyncio.to_thread(chunk, found, kind)
    parsed = await parse_in_child(data, kind, max_pages=max_pages, timeout_s=timeout_s, cut=True)
    found = has_text(parsed.sections, kind)
    if parsed.cuts is None:  # short enough to cut here
        return found, await asyncio.to_thread(chunk, found, kind)
    return found, [
        Chunk(found[index].text[start:end], found[index].page, start, end, heading)
        for index, start, end, heading in parsed.cuts
    ]


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
