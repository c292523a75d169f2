"""The ``retrieve`` action: the passages of the run's document collections that best match a
query, numbered for citation, with their source and page.

One ``RetrieveAction`` is registered (what the allow-list and ``GET /actions`` see). It
retrieves nothing by itself: a run that may read collections gets its own ``scoped`` copy,
bound to the collections the request chose (already checked to be the caller's), which
numbers passages across the whole run ([1], [2], ... never reused) and remembers what it
showed, so the final answer can keep the sources it cites (``sources``).

Passage text is the documents' owner's, but still untrusted: each line is cleaned and a line
that starts like a protocol step is quoted (``clean_block``), as for web results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tools.base import ToolError, ToolUnavailable
from tools.search.base import clean_block, clean_line, truncate

DEFAULT_TOP_K = 4
_MAX_QUERY_CHARS = 300
_MAX_REMEMBERED = 50  # passages a run keeps for its sources (bounded like everything else)
_CITATION = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved passage. ``score``: higher is better, comparable within one query."""

    chunk_id: int
    collection: str
    document_id: str
    source: str
    page: int | None
    start: int
    end: int
    heading: str | None
    text: str
    score: float


class PassageIndex(Protocol):
    async def search(self, collection_ids: Sequence[str], query: str, k: int) -> list[Passage]:
        """The ``k`` best passages for ``query`` in those collections; ``[]`` for none.
        Raises ``ToolUnavailable`` when the index cannot be read."""
        ...


@dataclass(frozen=True, slots=True)
class Scope:
    """The collections one run may read: ``(collection_id, name)`` pairs. ``first``: the run
    retrieves with its question before the model's first step (the request named them)."""

    collections: tuple[tuple[str, str], ...]
    first: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.collections)


class RetrieveAction:
    """The registered action. Unscoped it is unavailable: a run reads collections only
    through ``scoped``."""

    name = "retrieve"
    description = (
        "Search our own documents with the key words of what you need; returns the best "
        "passages, numbered, with their source and page. Cite a passage by its number, e.g. [1]."
    )
    input_hint = "query"

    def __init__(
        self, index: PassageIndex | None, *, top_k: int = DEFAULT_TOP_K, max_chars: int = 3000
    ) -> None:
        if top_k < 1 or max_chars < 200:
            raise ValueError("top_k >= 1 and max_chars >= 200")
        self.index = index
        self.top_k = top_k
        self.max_chars = max_chars

    def availability(self) -> str | None:
        return "no document collection was chosen for this run"

    async def run(self, tool_input: str) -> str:
        raise ToolUnavailable("retrieve is unavailable: no document collection was chosen")

    def scoped(self, scope: Scope) -> ScopedRetrieve:
        if self.index is None:
            raise RuntimeError("this retrieve action has no index (built without a store)")
        return ScopedRetrieve(self, self.index, scope)


class ScopedRetrieve:
    """``retrieve`` for one run over its collections."""

    name = RetrieveAction.name
    input_hint = RetrieveAction.input_hint

    def __init__(self, action: RetrieveAction, index: PassageIndex, scope: Scope) -> None:
        self._action = action
        self._index = index
        self.scope = scope
        self.shown: dict[int, Passage] = {}  # citation number -> passage
        self._numbers: dict[int, int] = {}  # chunk id -> its number in this run

    @property
    def description(self) -> str:
        names = ", ".join(self.scope.names)
        return f"{RetrieveAction.description} Collections: {names}."

    async def run(self, tool_input: str) -> str:
        query = clean_line(tool_input, _MAX_QUERY_CHARS * 2).strip().strip("\"'")
        if not query:
            raise ToolError("retrieve needs a query: what to look for in the documents")
        query = truncate(query, _MAX_QUERY_CHARS)
        ids = [collection_id for collection_id, _ in self.scope.collections]
        passages = await self._index.search(ids, query, self._action.top_k)
        if not passages:
            names = ", ".join(self.scope.names)
            return f'No passage in {names} matches "{query}". Try other words.'
        numbered = [(self._number(passage), passage) for passage in passages]
        return format_passages(numbered, max_chars=self._action.max_chars)

    def sources(self, answer: str | None) -> list[dict[str, Any]]:
        """The passages this run was shown, as the run's ``details.sources``: the ones the
        answer cites by number first (``cited``), then the others."""
        cited = {int(n) for n in _CITATION.findall(answer or "")}
        ordered = sorted(self.shown.items(), key=lambda item: (item[0] not in cited, item[0]))
        return [
            {
                "number": number,
                "cited": number in cited,
                "collection": passage.collection,
                "document_id": passage.document_id,
                "source": passage.source,
                "page": passage.page,
                "start": passage.start,
                "end": passage.end,
                "heading": passage.heading,
                "text": truncate(passage.text, 300),
            }
            for number, passage in ordered
        ]

    def _number(self, passage: Passage) -> int:
        number = self._numbers.get(passage.chunk_id)
        if number is None:
            number = len(self._numbers) + 1
            self._numbers[passage.chunk_id] = number
            if len(self.shown) < _MAX_REMEMBERED:
                self.shown[number] = passage
        return number


def format_passages(numbered: Sequence[tuple[int, Passage]], *, max_chars: int) -> str:
    """``[n] source, page p / heading`` then the passage, each within its share of
    ``max_chars``."""
    heads = []
    for number, passage in numbered:
        where = clean_line(passage.source, 200)
        if passage.page is not None:
            where += f", page {passage.page}"
        if passage.heading:
            where += f" / {clean_line(passage.heading, 200)}"
        heads.append(f"[{number}] {truncate(where, 240)}")
    fixed = sum(len(head) + 1 for head in heads) + 2 * (len(heads) - 1)
    share = max(80, (max_chars - fixed) // max(1, len(heads)))
    blocks = [
        f"{head}\n{truncate(clean_block(passage.text, share * 2), share)}"
        for head, (_, passage) in zip(heads, numbered, strict=True)
    ]
    text = "\n\n".join(blocks)
    return text if len(text) <= max_chars else truncate(text, max_chars)
