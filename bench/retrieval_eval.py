"""Evaluation, not a test: how well and how fast ``retrieve`` finds passages (BM25 in SQLite
FTS5; with an embeddings server, vectors and fusion too).

    .venv/bin/python bench/retrieval_eval.py              # the labelled set: recall, MRR, ingest
    .venv/bin/python bench/retrieval_eval.py --scale      # also latency at 10,000+ chunks, PDFs
    .venv/bin/python bench/retrieval_eval.py --verbose    # also each question it missed
    .venv/bin/python bench/retrieval_eval.py --questions questions-blind.jsonl  # the second set
    .venv/bin/python bench/retrieval_eval.py --lexical-variants  # BM25 variants tried, not shipped
    .venv/bin/python bench/embeddings_server.py &         # offline embeddings (make install-bench)
    .venv/bin/python bench/retrieval_eval.py --embeddings-base-url http://127.0.0.1:8090/v1

The labelled set is ``bench/data/retrieval``: the documents in ``docs/`` (the project's own
docs as Markdown, public-domain texts as plain text and HTML; ``SOURCES.md`` says where each
came from) and ``questions.jsonl``, one ``{"question", "source", "answer"}`` per line, where
``answer`` is a short quote from ``source`` that answers the question.

Everything goes through the service's own pipeline, in a temporary SQLite store: ``detect`` →
``sections`` → ``chunk`` → ``Collections.add_document``, then ``Collections.search(..., k)``
for each question. A passage is **relevant** when it comes from the question's ``source`` and
either its text holds the quote (whitespace collapsed on both sides) or its ``[start, end)``
range in the extracted text covers where the quote is (a quote cut by a chunk boundary).

Printed:

* per ranker, **recall@1** and **recall@k** (a relevant passage first, or in the top k) and
  **MRR** over the top k (1/rank of the first relevant passage, 0 past k): BM25 always; with
  ``--embeddings-base-url`` (any OpenAI-compatible ``/v1`` serving ``/embeddings``, e.g.
  ``bench/embeddings_server.py``) also the vectors alone (cosine) and their reciprocal-rank
  fusion with BM25, which is what ``retrieve`` uses when ``EMBEDDINGS_BASE_URL`` is set. The
  passages are embedded by the service's own sweep (``Collections.embed_pending``), timed;
* **ingest throughput** of the shipped set (documents/s, chunks/s: parsing, chunking and
  storing, not the store's creation), and **query latency** p50/p99 over its questions;
* with ``--scale``: synthetic documents (words drawn from the shipped texts by their
  frequency, with a seeded RNG) are added to the same collection until it holds at least
  ``--scale-chunks`` passages; then **query latency** p50/p99 over ``--queries`` searches (the
  labelled questions, repeated) and recall at that size (the synthetic passages are
  distractors that share the documents' words), and **PDF ingest throughput** in pages/s for a
  ``--pdf-pages`` page PDF made with fpdf2 (parsed by pypdf in the confined child process).

Times are wall-clock on whatever else the machine is doing; run it on an idle machine for
numbers to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from any directory
    sys.path.insert(0, str(ROOT))

from service.collections import _STOP as SERVICE_STOP_WORDS  # noqa: E402
from service.collections import Collections, fuse, prepare_document, query_terms  # noqa: E402
from service.embeddings import Embedder  # noqa: E402
from service.store import RunStore  # noqa: E402
from tools.retrieve.chunk import Chunk  # noqa: E402
from tools.retrieve.extract import Section  # noqa: E402
from tools.retrieve.tool import Passage  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "retrieval"
QUESTIONS = "questions.jsonl"
# A second set over the same documents, written by someone who had read the documents but
# not the first set's questions nor how ranking works (SOURCES.md): a check that the first
# set's numbers are not an artefact of how its questions were worded.
QUESTIONS_BLIND = "questions-blind.jsonl"
DOCS = "docs"
MAX_PAGES = 2000  # the service's default RETRIEVE_MAX_PAGES
QUOTE_WORDS = (3, 15)  # an answer quote's length, in words
# The FTS5 tokenizer of the chunks' index (service/migrations/versions/0004), to tell which of
# a query's words the index would match in a passage.
FTS5_TOKENIZE = "porter unicode61 remove_diacritics 2"
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
Ranker = Literal["bm25", "embeddings", "fusion", "bm25-stop", "bm25-rm3", "bm25-rm3-fused"]
# --lexical-variants: what was tried to bring BM25 nearer questions worded unlike their
# answers, none shipped (each did worse on the shipped set). More stop words: common words the
# service's own list keeps. RM3 (pseudo-relevance feedback, Lavrenko & Croft 2001, as in
# Anserini's defaults): the first ranking's top passages' commonest words join the query.
_MORE_STOP = (
    "if my no can will what which who whom whose when where why there were was not this these "
    "those would should could may might must any some into than then them they their our we "
    "you your me he she his her him about after before such so very also just only own same "
    "too out up down off over under again further once here all both each few more most other "
    "nor"
)
MORE_STOP = frozenset(_MORE_STOP.split())
RM3_PASSAGES, RM3_WORDS, RM3_POOL = 3, 10, 50
STOP_WORDS = SERVICE_STOP_WORDS | MORE_STOP


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    source: str
    answer: str


@dataclass(frozen=True, slots=True)
class Span:
    """Where a quote is in a document's extracted text: a section (page) and offsets."""

    page: int | None
    start: int
    end: int


@dataclass(slots=True)
class Ingested:
    """What ingesting some documents produced, and how long it took."""

    documents: int = 0
    chunks: int = 0
    pages: int = 0
    size: int = 0
    seconds: float = 0.0
    sections: dict[str, list[Section]] = field(default_factory=dict)
    passages: dict[str, list[Chunk]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds, per document


@dataclass(frozen=True, slots=True)
class Outcome:
    """One question's result: the rank (from 1) of the first relevant passage, or None."""

    question: Question
    rank: int | None
    first: Passage | None
    seconds: float


@dataclass(frozen=True, slots=True)
class Overlap:
    """Which of a question's search terms (``query_terms``) the index matches in the passages
    that hold its answer: BM25 can only find a passage through these."""

    terms: tuple[str, ...]
    shared: tuple[str, ...]

    @property
    def bucket(self) -> str:
        if not self.shared:
            return "none"
        return "half or fewer" if 2 * len(self.shared) <= len(self.terms) else "more than half"


@dataclass(frozen=True, slots=True)
class Scores:
    questions: int
    recall_at_1: float
    recall_at_k: float
    mrr: float


@dataclass(frozen=True, slots=True)
class Embedded:
    """Passages embedded by ``Collections.embed_pending`` (the service's background sweep)."""

    passages: int
    seconds: float


async def embed_all(collections: Collections) -> Embedded:
    started = time.perf_counter()
    passages = await collections.embed_pending()
    return Embedded(passages, time.perf_counter() - started)


@dataclass(slots=True)
class Evaluation:
    """The BM25 evaluation of one labelled set (``evaluate``)."""

    k: int
    ingested: Ingested
    outcomes: list[Outcome]
    scores: Scores
    unreachable: list[Question]  # no stored passage of the source can count as relevant
    overlaps: dict[Question, Overlap]
    # With an embeddings model: the other rankers' outcomes, and embedding the set's passages.
    rankers: dict[str, list[Outcome]] = field(default_factory=dict)
    embedded: Embedded | None = None

    @property
    def misses(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.rank is None]


# -- the labelled set ---------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped: how quotes are compared."""
    return " ".join(text.split())


def documents(data_dir: Path = DATA) -> list[Path]:
    """The set's documents, by name."""
    return sorted(path for path in (data_dir / DOCS).iterdir() if path.is_file())


def load_questions(data_dir: Path = DATA, questions_file: str = QUESTIONS) -> list[Question]:
    questions = []
    lines = (data_dir / questions_file).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        try:
            questions.append(Question(item["question"], item["source"], item["answer"]))
        except KeyError as exc:
            raise ValueError(f"{questions_file} line {number}: no {exc}") from exc
    return questions


def problems(data_dir: Path = DATA, questions_file: str = QUESTIONS) -> list[str]:
    """What is wrong with the labelled set: a question whose source is missing, whose answer
    is not a quote of its source (whitespace collapsed) or is not 3-15 words long. [] when
    the set is sound."""
    found = []
    texts = {path.name: normalise(path.read_text(encoding="utf-8")) for path in documents(data_dir)}
    for item in load_questions(data_dir, questions_file):
        words = len(item.answer.split())
        if item.source not in texts:
            found.append(f"{item.question!r}: no document {item.source!r}")
        elif normalise(item.answer) not in texts[item.source]:
            found.append(f"{item.question!r}: the answer is not in {item.source}: {item.answer!r}")
        if not QUOTE_WORDS[0] <= words <= QUOTE_WORDS[1]:
            found.append(f"{item.question!r}: the answer has {words} words")
    return found


def quote_spans(found: Sequence[Section], quote: str) -> list[Span]:
    """Every place the quote is in the extracted text, whatever whitespace it is split by."""
    pattern = re.compile(r"\s+".join(re.escape(word) for word in quote.split()))
    return [
        Span(section.page, match.start(), match.end())
        for section in found
        for match in pattern.finditer(section.text)
    ]


def term_overlap(question: str, passages: Sequence[Chunk]) -> Overlap:
    """The question's search terms that FTS5 (same tokenizer: Porter stems) matches in any of
    ``passages``, checked in an in-memory FTS5 table."""
    terms = tuple(query_terms(question))
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{FTS5_TOKENIZE}')")
        connection.executemany("INSERT INTO t VALUES (?)", [(p.text,) for p in passages])
        shared = tuple(
            term
            for term in terms
            if connection.execute("SELECT 1 FROM t WHERE t MATCH ?", (f'"{term}"',)).fetchone()
        )
    finally:
        connection.close()
    return Overlap(terms, shared)


def relevant(passage: Passage | Chunk, source: str, quote: str, spans: Sequence[Span]) -> bool:
    if isinstance(passage, Passage) and passage.source != source:
        return False
    if normalise(quote) in normalise(passage.text):
        return True
    return any(
        span.page == passage.page and passage.start <= span.start and span.end <= passage.end
        for span in spans
    )


# -- the pipeline -------------------------------------------------------------------------------


async def ingest_file(
    collections: Collections,
    collection: dict[str, Any],
    name: str,
    data: bytes,
    into: Ingested,
    *,
    keep: bool = True,
) -> None:
    """One document through the service's pipeline (as ``POST .../documents`` does), timed."""
    started = time.perf_counter()
    new = await prepare_document(data, name, max_pages=MAX_PAGES)
    await collections.add_document(collection, new)
    assert new.kind is not None
    kind, found, passages = new.kind, list(new.sections), list(new.chunks)
    seconds = time.perf_counter() - started
    into.seconds += seconds
    into.documents += 1
    into.chunks += len(passages)
    into.pages += len(found) if kind == "pdf" else 0
    into.size += len(data)
    if keep:
        into.sections[name] = found
        into.passages[name] = passages
        into.kinds[name] = kind
        into.timings[name] = seconds


async def ask(
    collections: Collections,
    collection_ids: list[str],
    questions: Sequence[Question],
    spans: dict[Question, list[Span]],
    k: int,
    ranker: Ranker = "bm25",
) -> list[Outcome]:
    rank_by = {
        "bm25": collections.lexical,
        "embeddings": collections.semantic,
        "fusion": collections.search,  # what retrieve calls
        "bm25-stop": functools.partial(_fewer_words, collections),
        "bm25-rm3": functools.partial(_rm3, collections, fused=False),
        "bm25-rm3-fused": functools.partial(_rm3, collections, fused=True),
    }[ranker]
    outcomes = []
    for item in questions:
        started = time.perf_counter()
        found = await rank_by(collection_ids, item.question, k)
        seconds = time.perf_counter() - started
        rank = next(
            (
                number
                for number, passage in enumerate(found, start=1)
                if relevant(passage, item.source, item.answer, spans[item])
            ),
            None,
        )
        outcomes.append(Outcome(item, rank, found[0] if found else None, seconds))
    return outcomes


async def _fewer_words(
    collections: Collections, collection_ids: list[str], query: str, k: int
) -> list[Passage]:
    words = [word for word in query.split() if word.strip("?.,!").casefold() not in MORE_STOP]
    return await collections.lexical(collection_ids, " ".join(words) or query, k)


async def _rm3(
    collections: Collections, collection_ids: list[str], query: str, k: int, *, fused: bool
) -> list[Passage]:
    first = await collections.lexical(collection_ids, query, max(k, RM3_POOL))
    weights: Counter[str] = Counter()
    for passage in first[:RM3_PASSAGES]:
        words = [
            word
            for word in _WORD.findall(passage.text.casefold())
            if len(word) > 2 and word not in STOP_WORDS
        ]
        for word, count in Counter(words).items():
            weights[word] += count / len(words)
    asked = set(query_terms(query))
    extra = [word for word, _ in weights.most_common() if word not in asked][:RM3_WORDS]
    second = await collections.lexical(collection_ids, f"{query} {' '.join(extra)}", k)
    return fuse([first, second], k) if fused else second


def score(outcomes: Sequence[Outcome]) -> Scores:
    n = max(len(outcomes), 1)
    return Scores(
        questions=len(outcomes),
        recall_at_1=sum(o.rank == 1 for o in outcomes) / n,
        recall_at_k=sum(o.rank is not None for o in outcomes) / n,
        mrr=sum(1 / o.rank for o in outcomes if o.rank is not None) / n,
    )


@dataclass(slots=True)
class _Shipped:
    ingested: Ingested
    questions: list[Question]
    spans: dict[Question, list[Span]]
    answering: dict[Question, list[Chunk]]  # the stored passages that count as relevant


async def _ingest_set(
    collections: Collections,
    collection: dict[str, Any],
    data_dir: Path,
    questions_file: str = QUESTIONS,
) -> _Shipped:
    questions = load_questions(data_dir, questions_file)
    ingested = Ingested()
    for path in documents(data_dir):
        await ingest_file(collections, collection, path.name, path.read_bytes(), ingested)
    spans = {
        item: quote_spans(ingested.sections.get(item.source, []), item.answer) for item in questions
    }
    answering = {
        item: [
            piece
            for piece in ingested.passages.get(item.source, [])
            if relevant(piece, item.source, item.answer, spans[item])
        ]
        for item in questions
    }
    return _Shipped(ingested, questions, spans, answering)


async def evaluate(
    data_dir: Path = DATA,
    *,
    k: int = 5,
    embedder: Embedder | None = None,
    variants: Sequence[Ranker] = (),
    questions_file: str = QUESTIONS,
) -> Evaluation:
    """BM25 over the labelled set in ``data_dir``, in a temporary store; with ``embedder``
    also vector ranking alone and the fusion of both (what ``retrieve`` then uses)."""
    rankers: dict[str, list[Outcome]] = {}
    embedded = None
    async with temporary_index("retrieval-eval-", embedder) as collections:
        collection = await collections.create("", "eval", "the labelled retrieval set")
        shipped = await _ingest_set(collections, collection, data_dir, questions_file)
        ids = [collection["collection_id"]]
        outcomes = await ask(collections, ids, shipped.questions, shipped.spans, k)
        for variant in variants:
            rankers[variant] = await ask(
                collections, ids, shipped.questions, shipped.spans, k, variant
            )
        if embedder is not None:
            embedded = await embed_all(collections)
            for ranker in ("embeddings", "fusion"):
                rankers[ranker] = await ask(
                    collections, ids, shipped.questions, shipped.spans, k, ranker
                )
    return Evaluation(
        rankers=rankers,
        embedded=embedded,
        k=k,
        ingested=shipped.ingested,
        outcomes=outcomes,
        scores=score(outcomes),
        unreachable=[item for item, found in shipped.answering.items() if not found],
        overlaps={
            item: term_overlap(item.question, found) for item, found in shipped.answering.items()
        },
    )


@contextlib.asynccontextmanager
async def temporary_index(
    prefix: str, embedder: Embedder | None = None
) -> AsyncIterator[Collections]:
    """Collections in a fresh SQLite store that is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        store = RunStore(f"sqlite+aiosqlite:///{workdir}/runs.db")
        await store.start()
        try:
            yield Collections(store, embedder)
        finally:
            await store.aclose()


# -- at scale -----------------------------------------------------------------------------------


@dataclass(slots=True)
class AtScale:
    synthetic: Ingested
    total_chunks: int
    outcomes: list[Outcome]  # the labelled questions once, at this size
    latencies_ms: list[float]  # every query, the labelled ones repeated
    pdf: Ingested
    # The same queries on the labelled set alone, in another owner's collection beside the big
    # one: what a tenant's query costs in a database other tenants fill.
    beside_ms: list[float] = field(default_factory=list)
    # With an embeddings model: embedding every passage, then fusion's recall and latency.
    embedded: Embedded | None = None
    fusion_outcomes: list[Outcome] = field(default_factory=list)
    fusion_ms: list[float] = field(default_factory=list)


def vocabulary(found: dict[str, list[Section]]) -> list[str]:
    """Every word of the shipped texts, as often as it occurs (sampling keeps frequencies)."""
    return [word for texts in found.values() for s in texts for word in _WORD.findall(s.text)]


def synthetic_text(rng: random.Random, words: Sequence[str], chars: int) -> str:
    """Paragraphs of sentences of words drawn from ``words``: text shaped like prose."""
    paragraphs: list[str] = []
    length = 0
    while length < chars:
        sentences = []
        for _ in range(rng.randint(3, 7)):
            drawn = rng.choices(words, k=rng.randint(8, 22))
            sentences.append(" ".join(drawn).capitalize() + ".")
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(paragraphs)


def make_pdf(rng: random.Random, words: Sequence[str], pages: int) -> bytes:
    """A ``pages``-page PDF of latin-1 text (fpdf2's core font), about 1,500 characters a page."""
    from fpdf import FPDF

    ascii_words = [word for word in words if word.isascii()]
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for _ in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 5, synthetic_text(rng, ascii_words, 1500))
    return bytes(pdf.output())


async def at_scale(
    data_dir: Path,
    *,
    chunks: int,
    queries: int,
    pdf_pages: int,
    seed: int,
    k: int,
    embedder: Embedder | None = None,
    questions_file: str = QUESTIONS,
) -> AtScale:
    """The labelled set plus synthetic documents up to ``chunks`` passages in one collection;
    query latency and recall there (BM25; and fusion, all passages embedded, with
    ``embedder``); then a ``pdf_pages`` page PDF ingested on its own."""
    rng = random.Random(seed)
    embedded, fusion, fusion_ms = None, [], []
    async with temporary_index("retrieval-scale-", embedder) as collections:
        collection = await collections.create("", "scale", "labelled set and filler")
        labelled = await _ingest_set(collections, collection, data_dir, questions_file)
        shipped, questions, spans = labelled.ingested, labelled.questions, labelled.spans
        words = vocabulary(shipped.sections)
        synthetic = Ingested()
        number = 0
        while shipped.chunks + synthetic.chunks < chunks:
            number += 1
            text = synthetic_text(rng, words, 40_000)
            name = f"synthetic-{number:04d}.txt"
            await ingest_file(collections, collection, name, text.encode(), synthetic, keep=False)
        ids = [collection["collection_id"]]
        await ask(collections, ids, questions[:5], spans, k)  # warm the page cache
        repeated = [questions[i % len(questions)] for i in range(max(queries, 1))]
        outcomes = await ask(collections, ids, repeated, spans, k)
        small = await collections.create("tenant", "small", "the labelled set alone")
        alone = await _ingest_set(collections, small, data_dir, questions_file)
        beside = await ask(collections, [small["collection_id"]], repeated, alone.spans, k)
        if embedder is not None:
            embedded = await embed_all(collections)
            await ask(collections, ids, questions[:5], spans, k, "fusion")
            timed = await ask(collections, ids, repeated, spans, k, "fusion")
            fusion, fusion_ms = timed[: len(questions)], [o.seconds * 1000 for o in timed]
        pdf_collection = await collections.create("", "pdf", "one generated PDF")
        pdf = Ingested()
        data = make_pdf(rng, words, pdf_pages)
        await ingest_file(collections, pdf_collection, "generated.pdf", data, pdf)
    return AtScale(
        synthetic=synthetic,
        total_chunks=shipped.chunks + synthetic.chunks,
        outcomes=outcomes[: len(questions)],
        latencies_ms=[o.seconds * 1000 for o in outcomes],
        pdf=pdf,
        beside_ms=[o.seconds * 1000 for o in beside],
        embedded=embedded,
        fusion_outcomes=fusion,
        fusion_ms=fusion_ms,
    )


# -- the report ---------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.1f}" if seconds > 0 else "-"


def quality_table(k: int, rows: Sequence[tuple[str, Scores | str]]) -> list[str]:
    lines = [
        f"| ranker | recall@1 | recall@{k} | MRR@{k} | questions |",
        "|---|---|---|---|---|",
    ]
    for name, scores in rows:
        if isinstance(scores, str):  # not measured: why
            lines.append(f"| {name} | {scores} | | | - |")
        else:
            lines.append(
                f"| {name} | {scores.recall_at_1:.3f} | {scores.recall_at_k:.3f} | "
                f"{scores.mrr:.3f} | {scores.questions} |"
            )
    return lines


def speed_table(evaluation: Evaluation, scale: AtScale | None) -> list[str]:
    shipped = evaluation.ingested
    small_ms = [o.seconds * 1000 for o in evaluation.outcomes]
    lines = [
        "| measurement | result | over |",
        "|---|---|---|",
        f"| ingest, shipped set | {_rate(shipped.documents, shipped.seconds)} documents/s, "
        f"{_rate(shipped.chunks, shipped.seconds)} chunks/s | {shipped.documents} documents "
        f"({shipped.size / 1024:,.0f} KiB), {shipped.chunks} chunks in {shipped.seconds:.2f} s |",
        f"| query latency, shipped set | p50 {statistics.median(small_ms):.2f} ms, "
        f"p99 {percentile(small_ms, 0.99):.2f} ms | {len(small_ms)} queries over "
        f"{shipped.chunks} chunks |",
    ]
    if evaluation.embedded is not None:
        embedded, fused = evaluation.embedded, evaluation.rankers["fusion"]
        fusion_ms = [o.seconds * 1000 for o in fused]
        lines += [
            f"| embedding the shipped set | {_rate(embedded.passages, embedded.seconds)} "
            f"passages/s | {embedded.passages} passages in {embedded.seconds:.2f} s |",
            f"| query latency, fusion (a query vector + both rankings) | p50 "
            f"{statistics.median(fusion_ms):.2f} ms, p99 {percentile(fusion_ms, 0.99):.2f} ms | "
            f"{len(fusion_ms)} queries over {shipped.chunks} chunks |",
        ]
    if scale is None:
        return lines
    synthetic, pdf, latencies = scale.synthetic, scale.pdf, scale.latencies_ms
    beside = scale.beside_ms or [0.0]
    lines += [
        f"| ingest, synthetic text | {_rate(synthetic.documents, synthetic.seconds)} "
        f"documents/s, {_rate(synthetic.chunks, synthetic.seconds)} chunks/s | "
        f"{synthetic.documents} documents ({synthetic.size / 1024 / 1024:,.1f} MiB), "
        f"{synthetic.chunks:,} chunks in {synthetic.seconds:.1f} s |",
        f"| query latency at scale | p50 {statistics.median(latencies):.2f} ms, "
        f"p99 {percentile(latencies, 0.99):.2f} ms | {len(latencies)} queries over "
        f"{scale.total_chunks:,} chunks |",
        f"| query latency, the set alone beside them | p50 {statistics.median(beside):.2f} ms, "
        f"p99 {percentile(beside, 0.99):.2f} ms | {len(beside)} queries in another owner's "
        "collection |",
        *_fusion_at_scale(scale),
        f"| PDF ingest | {_rate(pdf.pages, pdf.seconds)} pages/s, "
        f"{_rate(pdf.chunks, pdf.seconds)} chunks/s | {pdf.pages} pages "
        f"({pdf.size / 1024:,.0f} KiB), {pdf.chunks:,} chunks in {pdf.seconds:.1f} s |",
    ]
    return lines


def _fusion_at_scale(scale: AtScale) -> list[str]:
    if scale.embedded is None or not scale.fusion_ms:
        return []
    embedded, fused = scale.embedded, scale.fusion_ms
    return [
        f"| embedding at scale | {_rate(embedded.passages, embedded.seconds)} passages/s | "
        f"{embedded.passages:,} passages in {embedded.seconds:.1f} s |",
        f"| query latency at scale, fusion | p50 {statistics.median(fused):.2f} ms, "
        f"p99 {percentile(fused, 0.99):.2f} ms | {len(fused)} queries over "
        f"{scale.total_chunks:,} chunks |",
    ]


def per_document_table(evaluation: Evaluation) -> list[str]:
    asked: Counter[str] = Counter(o.question.source for o in evaluation.outcomes)
    found: Counter[str] = Counter(
        o.question.source for o in evaluation.outcomes if o.rank is not None
    )
    lines = [
        f"| document | kind | ingest ms | chunks | questions | found in top {evaluation.k} |",
        "|---|---|---|---|---|---|",
    ]
    ingested = evaluation.ingested
    for name, passages in ingested.passages.items():
        lines.append(
            f"| {name} | {ingested.kinds[name]} | {ingested.timings[name] * 1000:,.0f} | "
            f"{len(passages)} | {asked[name]} | {found[name]} |"
        )
    return lines


def overlap_table(evaluation: Evaluation) -> list[str]:
    k = evaluation.k
    lines = [
        f"| query terms the index finds in the answer's passage | questions | in top {k} | "
        f"recall@{k} |",
        "|---|---|---|---|",
    ]
    for bucket in ("none", "half or fewer", "more than half"):
        chosen = [
            o for o in evaluation.outcomes if evaluation.overlaps[o.question].bucket == bucket
        ]
        found = sum(o.rank is not None for o in chosen)
        recall = f"{found / len(chosen):.3f}" if chosen else "-"
        lines.append(f"| {bucket} | {len(chosen)} | {found} | {recall} |")
    return lines


def describe(passage: Passage | None) -> str:
    if passage is None:
        return "nothing"
    where = f"{passage.source}" + (f" / {passage.heading}" if passage.heading else "")
    return f"{where}: {normalise(passage.text)[:110]!r}"


def misses_report(
    name: str, outcomes: Sequence[Outcome], k: int, overlaps: dict[Question, Overlap]
) -> list[str]:
    lines = [f"{name}: missed (no relevant passage in the top {k}):"]
    for outcome in outcomes:
        if outcome.rank is None:
            item = outcome.question
            overlap = overlaps[item]
            lines += [
                f"- {item.question}",
                f"    expected {item.source}: {item.answer!r}",
                f"    terms    {', '.join(overlap.terms)}; in the answer's passage: "
                f"{', '.join(overlap.shared) or 'none'}",
                f"    first    {describe(outcome.first)}",
            ]
    late = [o for o in outcomes if o.rank is not None and o.rank > 1]
    if late:
        lines.append(f"{name}: found, but not first:")
        lines += [f"- rank {o.rank}: {o.question.question}" for o in late]
    return lines


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data)
    wrong = problems(data_dir, args.questions)
    if wrong:
        print("the labelled set is broken:", *wrong, sep="\n  ", file=sys.stderr)
        return 2
    embedder = None
    if args.embeddings_base_url:
        embedder = Embedder(
            args.embeddings_base_url, args.embeddings_model, timeout_s=120.0, batch=args.batch
        )
    try:
        variants: list[Ranker] = (
            ["bm25-stop", "bm25-rm3", "bm25-rm3-fused"] if args.lexical_variants else []
        )
        evaluation = await evaluate(
            data_dir,
            k=args.k,
            embedder=embedder,
            variants=variants,
            questions_file=args.questions,
        )
        scale = None
        if args.scale:
            scale = await at_scale(
                data_dir,
                chunks=args.scale_chunks,
                queries=args.queries,
                pdf_pages=args.pdf_pages,
                seed=args.seed,
                k=args.k,
                embedder=embedder,
                questions_file=args.questions,
            )
    finally:
        if embedder is not None:
            await embedder.aclose()
    shipped = evaluation.ingested
    print(
        f"data: {data_dir}, {args.questions} ({shipped.documents} documents, "
        f"{shipped.chunks} chunks, {evaluation.scores.questions} questions); k={args.k}; "
        f"store: temporary SQLite {sqlite3.sqlite_version} FTS5 (BM25)"
    )
    if args.scale:
        print(
            f"scale: >= {args.scale_chunks:,} chunks (seed {args.seed}), {args.queries} "
            f"queries; PDF: {args.pdf_pages} pages"
        )
    if embedder is not None:
        print(f"embeddings: {args.embeddings_model} at {args.embeddings_base_url}")
    rows: list[tuple[str, Scores | str]] = [("bm25 (FTS5)", evaluation.scores)]
    for variant, label in (
        ("bm25-stop", f"bm25, {len(MORE_STOP)} more stop words (not shipped)"),
        ("bm25-rm3", "bm25 + RM3 feedback (not shipped)"),
        ("bm25-rm3-fused", "bm25 fused with bm25 + RM3 (not shipped)"),
    ):
        if variant in evaluation.rankers:
            rows.append((label, score(evaluation.rankers[variant])))
    if scale is not None:
        rows.append(
            (f"bm25, + {scale.synthetic.chunks:,} random-word chunks", score(scale.outcomes))
        )
    if embedder is None:
        rows += [("embeddings", "not configured"), ("fusion (bm25 + embeddings)", "not configured")]
    else:
        rows += [
            ("embeddings (cosine)", score(evaluation.rankers["embeddings"])),
            ("fusion (bm25 + embeddings, RRF)", score(evaluation.rankers["fusion"])),
        ]
        if scale is not None and scale.fusion_outcomes:
            rows.append(
                (
                    f"fusion, + {scale.synthetic.chunks:,} random-word chunks",
                    score(scale.fusion_outcomes),
                )
            )
    print()
    print("\n".join(quality_table(args.k, rows)))
    print()
    print("\n".join(speed_table(evaluation, scale)))
    print()
    print("\n".join(per_document_table(evaluation)))
    print()
    print("\n".join(overlap_table(evaluation)))
    if evaluation.unreachable:
        print()
        print("questions no stored passage can answer (the chunking cut the quote):")
        for item in evaluation.unreachable:
            print(f"- {item.question} ({item.source}: {item.answer!r})")
    if args.verbose:
        print()
        overlaps = evaluation.overlaps
        print("\n".join(misses_report("bm25", evaluation.outcomes, args.k, overlaps)))
        for ranker, outcomes in evaluation.rankers.items():
            print()
            print("\n".join(misses_report(ranker, outcomes, args.k, overlaps)))
        if scale is not None:
            print()
            print("\n".join(misses_report("bm25 at scale", scale.outcomes, args.k, overlaps)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", default=str(DATA), help="the labelled set's directory")
    parser.add_argument(
        "--questions",
        default=QUESTIONS,
        help=f"the labelled questions, a file in --data ({QUESTIONS}, or {QUESTIONS_BLIND})",
    )
    parser.add_argument("-k", "--k", type=int, default=5, help="passages per query")
    parser.add_argument("--scale", action="store_true", help="also latency at size, and PDFs")
    parser.add_argument("--scale-chunks", type=int, default=10_000, help="index size for --scale")
    parser.add_argument("--queries", type=int, default=200, help="timed queries for --scale")
    parser.add_argument("--pdf-pages", type=int, default=200, help="pages of the --scale PDF")
    parser.add_argument("--seed", type=int, default=1, help="for the synthetic documents")
    parser.add_argument(
        "--embeddings-base-url",
        default=None,
        help="an OpenAI-compatible /v1 with /embeddings: also rank by vectors, and fuse",
    )
    parser.add_argument("--embeddings-model", default="wordllama-l2-supercat-256")
    parser.add_argument("--batch", type=int, default=64, help="passages per embeddings request")
    parser.add_argument("--verbose", action="store_true", help="list the questions missed")
    parser.add_argument(
        "--lexical-variants",
        action="store_true",
        help="also BM25 with more stop words and with RM3 feedback (tried, not shipped)",
    )
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be at least 1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
