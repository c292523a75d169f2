"""``GET /feedback/export``: your rated runs as training data, one JSON object per line
(``service.export`` says what each format holds)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from service.auth import client_address
from service.deps import Client, Owner, State
from service.errors import ProblemError, problem_responses
from service.export import ExportFormat, action_docs, export_records, jsonl

router = APIRouter(tags=["feedback"])
EXPORT_LIMIT = 10_000  # runs per export; narrow it with `since` for more
EXPORT_BATCH = 200  # lines written at a time
NDJSON = "application/x-ndjson"


@router.get(
    "/feedback/export",
    summary="Your runs and feedback as JSONL training data",
    description="`sft`: chat transcripts of runs scored 1 or corrected (a correction replaces "
    "the answer), as OpenAI's fine-tuning API and TRL's SFTTrainer read them. `preference`: "
    "`{prompt, chosen, rejected}` pairs (a correction against the model's answer; a liked "
    "run against a disliked one of the same question), TRL's preference format. `raw`: "
    f"every run with its feedback. At most {EXPORT_LIMIT:,} runs, oldest first; `since` "
    "(ISO 8601) keeps runs made or rated since then.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {NDJSON: {}}, "description": "One JSON object per line."},
        **problem_responses(401, 422, 429, 503),
    },
)
async def export(
    request: Request,
    state: State,
    client: Client,
    owner: Owner,
    format: ExportFormat = "sft",
    since: Annotated[
        str | None,
        Query(
            max_length=40,
            description="ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00Z (UTC unless said)",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> StreamingResponse:
    moment = _moment(since)
    await state.admission.check_rate(client or client_address(request))  # work, as a run is
    state.exports.take(owner)
    try:
        rows = await state.store.export_rows(
            owner, since=moment, with_feedback_only=format != "raw", limit=EXPORT_LIMIT
        )
    except BaseException:
        state.exports.give_back(owner)
        raise
    actions = action_docs(state.tools, state.settings.allowed_actions)
    records = jsonl(export_records(format, rows, actions=actions))

    async def lines() -> AsyncIterator[str]:
        # Written a few hundred lines at a time, each batch in a thread (a transcript's JSON
        # is CPU work), never the whole export at once in memory as text.
        try:
            while batch := await asyncio.to_thread(_batch, records):
                yield batch
        finally:
            state.exports.give_back(owner)

    disposition = f'attachment; filename="reactpal-{format}.jsonl"'
    return StreamingResponse(
        lines(), media_type=NDJSON, headers={"Content-Disposition": disposition}
    )


def _batch(lines: Iterator[str]) -> str:
    return "".join(itertools.islice(lines, EXPORT_BATCH))


def _moment(text: str | None) -> dt.datetime | None:
    """An ISO 8601 date or date-time, and nothing else (not a number of seconds)."""
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip().upper())
    except ValueError:
        raise ProblemError(
            422, "since must be an ISO 8601 date or date-time, e.g. 2026-11-01"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
