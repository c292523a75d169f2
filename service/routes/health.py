"""Liveness and readiness (no API key needed)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from agents.errors import LLMError, LLMTimeout
from service.deps import State
from service.embeddings import EmbeddingsUnavailable
from service.errors import ProblemError
from service.readiness import TTL_S, BackendChecks
from service.state import AppState

log = structlog.get_logger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 5.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the LLM is reachable, the sandbox and the run store work",
    description="Public, and cheap: the LLM and run-store checks run at most once every "
    f"{TTL_S:g} s, whoever asks. Which check failed, and the details (model, sandbox layers, "
    "whether search and the embeddings server can be reached: shown, not required, since "
    "runs go on without them), are "
    "shown to authenticated callers only (or to all when no API keys are configured).",
    responses={503: {"description": "Not ready"}},
)
async def readyz(request: Request, state: State) -> JSONResponse:
    backends = await state.readiness.get(lambda: _check_backends(state))
    layers = state.sandbox.layers
    sandbox_ok = bool(layers.get("process")) and bool(layers.get("restrictedpython"))
    ready = backends.ok and sandbox_ok
    body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
    if _may_see_details(request, state):
        sandbox = {
            "ok": sandbox_ok,
            "layers": layers,
            "missing_required": state.sandbox.missing_layers,  # non-empty only with ALLOW_WEAK
        }
        body["checks"] = {**backends.checks, "sandbox": sandbox}
    return JSONResponse(body, status_code=200 if ready else 503)


# HEAD as well, as RFC 9110 has it wherever GET is served (some load balancers probe with
# it: 405 before, pass EY); the same status, no body, outside the published schema.
# HEAD answers GET's response, headers and all (RFC 9110: the same fields; pass FA: no
# content type, a length of 0); the server sends no body for a HEAD.
@router.head("/healthz", include_in_schema=False)
async def healthz_head() -> Response:
    return JSONResponse(await healthz())


@router.head("/readyz", include_in_schema=False)
async def readyz_head(request: Request, state: State) -> Response:
    return await readyz(request, state)


async def _check_backends(state: AppState) -> BackendChecks:
    checks: dict[str, Any] = {}
    try:
        await asyncio.wait_for(state.llm.check(), CHECK_TIMEOUT_S)
        checks["llm"] = {
            "ok": True,
            "model": state.llm.model,
            "protocol": state.protocol.describe(),  # AGENT_PROTOCOL and what it became
        }
    except (LLMError, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, LLMError) else LLMTimeout.reason
        log.warning("readiness: LLM backend check failed", reason=reason, error=str(exc))
        checks["llm"] = {"ok": False, "reason": reason}  # the details: the log only
    try:
        await asyncio.wait_for(state.store.check(), CHECK_TIMEOUT_S)
        checks["store"] = {"ok": True}
    except Exception as exc:
        log.warning("readiness: run store check failed", error=str(exc))
        checks["store"] = {"ok": False, "error": type(exc).__name__}
    ok = all(check["ok"] for check in checks.values())  # the required ones, so far
    for tool in state.tools:
        # An action whose service can be down (search): shown, but not required. Runs go on
        # without it (they are built without it while it is down).
        probe = getattr(tool, "check", None)
        if callable(probe):
            try:
                down = await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
            except TimeoutError:
                down = f"no answer within {CHECK_TIMEOUT_S:g} s"
            checks[tool.name] = {"ok": down is None, "required": False}
            if down is not None:
                checks[tool.name]["reason"] = down
    if (embedder := state.collections.embedder) is not None:
        # Vector ranking (EMBEDDINGS_BASE_URL): not required either; retrieve ranks by BM25
        # while it is down.
        checks["embeddings"] = {"ok": True, "required": False, "model": embedder.model}
        try:
            await asyncio.wait_for(embedder.embed_query("readiness"), CHECK_TIMEOUT_S)
        except (EmbeddingsUnavailable, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {CHECK_TIMEOUT_S:g} s"
            checks["embeddings"].update(ok=False, reason=reason)
    return BackendChecks(ok, checks, time.monotonic())


def _may_see_details(request: Request, state: AppState) -> bool:
    """No keys configured, or a valid key sent. A request without any key is not counted as
    a failed attempt: load balancers poll this route without one."""
    if not state.settings.agent_api_keys:
        return True
    if "authorization" not in request.headers:
        return False
    try:
        state.auth.client(request)
    except ProblemError:
        return False
    return True
