"""Prometheus metrics. Each app has its own registry, so several apps (tests) can coexist."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.schemas import AskResponse

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
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
        self.in_flight = Gauge("reactpal_runs_in_flight", "Runs under way.", registry=self.registry)
        self.rejected = Counter(
            "reactpal_requests_rejected",
            "Requests refused before a run.",
            ["reason"],
            registry=self.registry,
        )

    def observe_run(self, mode: str, response: AskResponse) -> None:
        self.runs.labels(mode, response.status).inc()
        self.run_seconds.labels(mode).observe(response.duration_ms / 1000)
        self.steps.labels(mode).observe(len(response.steps))
        self.llm_calls.labels(mode).inc(response.usage.llm_calls)
        self.tokens.labels(mode, "prompt").inc(response.usage.prompt_tokens)
        self.tokens.labels(mode, "completion").inc(response.usage.completion_tokens)
        for step in response.steps:
            self.actions.labels(step.action or "(unparsed)").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
