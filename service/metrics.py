"""Prometheus metrics. Each app has its own registry, so several apps (tests) can coexist.

Every label takes its values from a fixed set written in the code, never from a request or the
model: each value is a series kept for the process's life, so a value the model or a client
could choose would let it grow the metrics without bound (issue 16). ``mode`` and ``status``
are ``Literal`` fields of the response, ``kind`` and ``reason`` are constants, and ``action``
is one of the service's actions, any other name the model writes being counted as
``refused`` (and a step with no readable action as ``(unparsed)``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from agents.policy import FINISH
from service.auth import AuthFailure
from service.schemas import AskResponse
from service.settings import BUILTIN_ACTIONS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REFUSED = "refused"  # an action name that is not one of the service's
UNPARSED = "(unparsed)"  # a step whose completion named no action


class Metrics:
    def __init__(self, actions: Iterable[str] = BUILTIN_ACTIONS) -> None:
        """``actions``: every action name the service has (its tools; ``finish`` is always
        one): the only values of the ``action`` label besides ``refused`` and
        ``(unparsed)``."""
        self._known_actions = frozenset({FINISH, *(a.lower() for a in actions)})
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "reactpal_runs",
            "Runs by mode and final status.",
            ["mode", "status"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "reactpal_run_duration_seconds",
            "Wall-clock time of a run.",
            ["mode"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.steps = Histogram(
            "reactpal_run_steps",
            "Steps per run.",
            ["mode"],
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24),
            registry=self.registry,
        )
        self.llm_calls = Counter(
            "reactpal_llm_calls", "LLM calls made by runs.", ["mode"], registry=self.registry
        )
        self.tokens = Counter(
            "reactpal_llm_tokens",
            "Tokens used by runs.",
            ["mode", "kind"],
            registry=self.registry,
        )
        self.actions = Counter(
            "reactpal_actions", "Actions taken by the model.", ["action"], registry=self.registry
        )
        self.in_flight = Gauge(
            "reactpal_runs_in_flight",
            "Runs under way.",
            registry=self.registry,
            multiprocess_mode="livesum",  # with WORKERS, the sum over the live workers
        )
        self.rejected = Counter(
            "reactpal_requests_rejected",
            "Requests refused before a run.",
            ["reason"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "reactpal_auth_failures",
            "Requests with a missing or wrong API key (answered 401).",
            ["reason"],
            registry=self.registry,
        )
        self.auth_throttled = Counter(
            "reactpal_auth_throttled",
            "Requests refused (429) from an address blocked after too many failed API-key "
            "attempts; their keys are not checked.",
            registry=self.registry,
        )
        # Every fixed series from the start, at 0: a rate over them needs no first event.
        for action in (*sorted(self._known_actions), REFUSED, UNPARSED):
            self.actions.labels(action)
        for reason in get_args(AuthFailure):
            self.auth_failures.labels(reason)

    def observe_run(self, mode: str, response: AskResponse) -> None:
        self.runs.labels(mode, response.status).inc()
        self.run_seconds.labels(mode).observe(response.duration_ms / 1000)
        self.steps.labels(mode).observe(len(response.steps))
        self.llm_calls.labels(mode).inc(response.usage.llm_calls)
        self.tokens.labels(mode, "prompt").inc(response.usage.prompt_tokens)
        self.tokens.labels(mode, "completion").inc(response.usage.completion_tokens)
        for step in response.steps:
            self.actions.labels(self._action_label(step.action)).inc()

    def _action_label(self, action: str | None) -> str:
        """The model writes the action's name: only the service's own names become labels."""
        if not action:
            return UNPARSED
        name = action.lower()
        return name if name in self._known_actions else REFUSED

    def render(self) -> bytes:
        """This app's metrics; with ``WORKERS`` > 1 (``PROMETHEUS_MULTIPROC_DIR`` set by
        ``python -m service``), every worker's, summed, whichever worker is asked."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            workers = CollectorRegistry()
            multiprocess.MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
            return generate_latest(workers)
        return generate_latest(self.registry)
