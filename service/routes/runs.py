"""Stored runs, and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Path
from fastapi.responses import PlainTextResponse, Response

from service.deps import Client, State
from service.errors import ProblemError, problem_responses
from service.metrics import CONTENT_TYPE
from service.schemas import StoredRun

router = APIRouter()


@router.get(
    "/runs/{run_id}",
    tags=["runs"],
    response_model=StoredRun,
    summary="A stored run",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_run(
    state: State, _: Client, run_id: str = Path(max_length=64, pattern=r"^[0-9a-f]+$")
) -> StoredRun:
    record = await state.store.get(run_id)
    if record is None:
        raise ProblemError(404, f"no run with id {run_id}")
    return StoredRun.model_validate(record)


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,  # documents the text exposition format, not JSON
    responses=problem_responses(401),
)
async def metrics(state: State, _: Client) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
