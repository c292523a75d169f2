"""What the app shares across requests, created once in the lifespan and reached through
``Depends``: the LLM client, the sandbox, the action registry, the run store, metrics and the
access checks. Nothing here holds per-run state: one agent is built per request, by
``agents``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from agents.factory import AgentFactory
from agents.llm.base import LLM
from agents.protocol import ProtocolChoice
from service.admission import Admission
from service.auth import Authenticator
from service.collections import Collections
from service.metrics import Metrics
from service.readiness import ReadinessCache
from service.runs import RunManager
from service.settings import Settings
from service.store import RunStore
from tools.registry import ToolRegistry
from tools.sandbox import Sandbox


@dataclass(slots=True)
class AppState:
    settings: Settings
    llm: LLM
    sandbox: Sandbox
    tools: ToolRegistry
    store: RunStore
    collections: Collections  # documents the retrieve action reads, in the store's database
    metrics: Metrics
    auth: Authenticator
    admission: Admission
    agents: AgentFactory  # builds each run's agent from llm, sandbox and tools
    runs: RunManager  # the runs in progress in this process
    protocol: ProtocolChoice  # AGENT_PROTOCOL, resolved against what the LLM enforces
    readiness: ReadinessCache = field(default_factory=ReadinessCache)  # /readyz's checks


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.reactpal
    return state
