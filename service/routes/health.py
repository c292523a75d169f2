"""Liveness and readiness (no API key needed)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agents.errors import LLMError
from service.deps import State

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 5.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the LLM is reachable, the sandbox and the run store work",
    responses={503: {"description": "Not ready; the body says which check failed"}},
)
async def readyz(state: State) -> JSONResponse:
    checks: dict[str, Any] = {}
    ready = True
    try:
        await asyncio.wait_for(state.llm.check(), CHECK_TIMEOUT_S)
        checks["llm"] = {"ok": True, "model": state.llm.model}
    except (LLMError, TimeoutError) as exc:
        ready = False
        checks["llm"] = {"ok": False, "error": str(exc) or "timed out"}
    layers = state.sandbox.layers
    sandbox_ok = bool(layers.get("process")) and bool(layers.get("restrictedpython"))
    ready &= sandbox_ok
    checks["sandbox"] = {
        "ok": sandbox_ok,
        "layers": layers,
        "missing_required": state.sandbox.missing_layers,  # non-empty only with ALLOW_WEAK
    }
    try:
        await asyncio.wait_for(state.store.check(), CHECK_TIMEOUT_S)
        checks["store"] = {"ok": True}
    except Exception as exc:
        ready = False
        checks["store"] = {"ok": False, "error": type(exc).__name__}
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
