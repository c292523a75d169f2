"""``GET /feedback/export``: your rated runs as training data, one JSON object per line
(``service.export`` says what each format holds)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from service.deps import Owner, State
from service.errors import ProblemError, problem_responses
from service.export import ExportFormat, action_docs, export_records, jsonl

router = APIRouter(tags=["feedback"])
EXPORT_LIMIT = 10_000  # runs per export; narrow it with `since` for more
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
        **problem_responses(401, 422, 503),
    },
)
async def export(
    state: State,
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
    rows = await state.store.export_rows(
        owner, since=_moment(since), with_feedback_only=format != "raw", limit=EXPORT_LIMIT
    )
    actions = action_docs(state.tools, state.settings.allowed_actions)
    # Made in a thread, not on the event loop: up to EXPORT_LIMIT runs of transcripts.
    made = await asyncio.to_thread(
        lambda: list(jsonl(export_records(format, rows, actions=actions)))
    )

    async def lines() -> AsyncIterator[str]:
        for line in made:
            yield line

    disposition = f'attachment; filename="reactpal-{format}.jsonl"'
    return StreamingResponse(
        lines(), media_type=NDJSON, headers={"Content-Disposition": disposition}
    )


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
