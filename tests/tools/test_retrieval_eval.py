"""bench/retrieval_eval.py on the labelled set shipped in bench/data/retrieval: the set is sound
(every document there, every answer a quote of its source that the chunking keeps whole), and
BM25 through the real pipeline (detect, sections, chunk, Collections.search) finds the answers.

Nothing here is skipped: a missing or broken data file fails."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bench import retrieval_eval
from bench.retrieval_eval import Evaluation, normalise
from tools.retrieve.extract import detect

module_loop = pytest.mark.asyncio(loop_scope="module")  # the evaluation is made once

PROJECT_DOCS = {
    "reactpal-readme.md",
    "reactpal-design.md",
    "reactpal-contract.md",
    "reactpal-style.md",
}
PUBLIC_DOMAIN = {"gettysburg-address.txt", "declaration-of-independence.txt", "bill-of-rights.html"}
# The target for BM25 alone. Measured on 2026-12-01: recall@5 0.604 (32/53), recall@1 0.321;
# the misses are questions worded unlike their answer (see the bench's --verbose).
TARGET_RECALL_AT_5 = 0.8
# What the ranking gets today, less a margin: below it, retrieval (or the set) broke.
FLOOR_RECALL_AT_5 = 0.55
FLOOR_RECALL_AT_1 = 0.25
# The second set, written without seeing the first (SOURCES.md): 2026-12-03, recall@5 0.617
# (37/60), recall@1 0.350.
QUESTION_FILES = (retrieval_eval.QUESTIONS, retrieval_eval.QUESTIONS_BLIND)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def evaluation() -> Evaluation:
    return await retrieval_eval.evaluate(retrieval_eval.DATA, k=5)


def test_every_document_is_shipped_and_asked_about() -> None:
    shipped = {path.name: path for path in retrieval_eval.documents(retrieval_eval.DATA)}
    assert set(shipped) == PROJECT_DOCS | PUBLIC_DOMAIN
    assert (retrieval_eval.DATA / "SOURCES.md").is_file()
    kinds = {detect(path.read_bytes(), name) for name, path in shipped.items()}
    assert kinds == {"text", "markdown", "html"}
    questions = retrieval_eval.load_questions(retrieval_eval.DATA)
    assert len(questions) >= 40
    assert len({item.question for item in questions}) == len(questions)
    assert {item.source for item in questions} == set(shipped)
    assert sum(item.source in PUBLIC_DOMAIN for item in questions) >= 8


@pytest.mark.parametrize("questions_file", QUESTION_FILES)
def test_every_answer_is_a_short_quote_of_its_source(questions_file: str) -> None:
    questions = retrieval_eval.load_questions(retrieval_eval.DATA, questions_file)
    for item in questions:
        path = retrieval_eval.DATA / "docs" / item.source
        text = normalise(path.read_text(encoding="utf-8"))
        assert normalise(item.answer) in text, (item.source, item.answer)
        assert 3 <= len(item.answer.split()) <= 15, item.answer
    assert retrieval_eval.problems(retrieval_eval.DATA, questions_file) == []


@module_loop
async def test_every_answer_is_whole_in_a_stored_passage(evaluation: Evaluation) -> None:
    assert evaluation.unreachable == []
    assert evaluation.scores.questions == len(retrieval_eval.load_questions(retrieval_eval.DATA))


@module_loop
async def test_bm25_recall_stays_above_its_floor(evaluation: Evaluation) -> None:
    scores = evaluation.scores
    assert scores.recall_at_k >= FLOOR_RECALL_AT_5, _misses(evaluation)
    assert scores.recall_at_1 >= FLOOR_RECALL_AT_1, _misses(evaluation)
    assert scores.recall_at_1 <= scores.mrr <= scores.recall_at_k


@module_loop
@pytest.mark.xfail(
    strict=True,
    reason="BM25 alone finds 0.604 of the answers in its top 5, not 0.8: paraphrased questions "
    "share few words with their answers (bench/retrieval_eval.py --verbose lists them)",
)
async def test_bm25_recall_at_5_meets_the_target(evaluation: Evaluation) -> None:
    assert evaluation.scores.recall_at_k >= TARGET_RECALL_AT_5, _misses(evaluation)


def _misses(evaluation: Evaluation) -> str:
    return "\n".join(
        f"{o.question.source}: {o.question.question}" for o in evaluation.outcomes if o.rank is None
    )


@module_loop
async def test_the_bench_measures_vectors_and_fusion_with_an_embeddings_server() -> None:
    """The bench's embeddings path, against the fake server (its recall means nothing: the
    fake's vectors are hashed words; the real numbers are in the README)."""
    from tests.fakes.embeddings import FakeEmbeddings

    embedder = FakeEmbeddings().embedder(batch=64)
    try:
        measured = await retrieval_eval.evaluate(retrieval_eval.DATA, k=5, embedder=embedder)
    finally:
        await embedder.aclose()
    assert measured.embedded is not None
    assert measured.embedded.passages == measured.ingested.chunks
    assert set(measured.rankers) == {"embeddings", "fusion"}
    for outcomes in measured.rankers.values():
        assert len(outcomes) == measured.scores.questions
        assert retrieval_eval.score(outcomes).recall_at_k > 0


@module_loop
async def test_the_blind_set_is_answerable_and_bm25_finds_most_of_it() -> None:
    measured = await retrieval_eval.evaluate(
        retrieval_eval.DATA, k=5, questions_file=retrieval_eval.QUESTIONS_BLIND
    )
    questions = retrieval_eval.load_questions(retrieval_eval.DATA, retrieval_eval.QUESTIONS_BLIND)
    assert len(questions) >= 50
    assert len({item.question for item in questions}) == len(questions)
    assert measured.unreachable == []
    assert measured.scores.questions == len(questions)
    assert measured.scores.recall_at_k >= FLOOR_RECALL_AT_5, _misses(measured)
    assert measured.scores.recall_at_1 >= FLOOR_RECALL_AT_1, _misses(measured)
