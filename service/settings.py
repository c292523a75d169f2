"""The service's settings: the README's Configuration table, validated at start-up.

Read once (``Settings()``) in ``python -m service`` and passed to ``create_app``; tests build
their own ``Settings(...)`` instead of patching the environment. Unsafe or contradictory
values fail fast with a message naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from limits import parse
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agents.paths import default_data_dir
from tools.mcp_tool import parse_servers
from tools.sandbox.result import SandboxConfig

BUILTIN_ACTIONS = ("python", "search", "finish")
CommaList = Annotated[tuple[str, ...], NoDecode]
# An ALLOWED_HOSTS entry: "*", a name or IPv4, "*.domain", or a bracketed IPv6; never a port.
_HOST_PATTERN = re.compile(r"\*|(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\]")


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # uvicorn worker processes; unset: 1 with the embedded model (its weights would be loaded
    # once per worker), else the number of cores.
    workers: int | None = Field(None, ge=1, le=64)
    # SIGTERM: requests in progress get this long, then runs still going (background ones)
    # this long again, then they are cancelled and stored as interrupted.
    shutdown_grace_s: float = Field(20.0, ge=0, le=600)
    log_json: bool = False
    # A request's headers must arrive within this, and one address may hold this many
    # connections at once (a proxy in FORWARDED_ALLOW_IPS excepted): service/connections.py.
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    # A document's body must arrive whole within this (service/routes/collections.py).
    body_timeout_s: float = Field(60.0, gt=0, le=3600)
    max_connections_per_address: int = Field(64, ge=1, le=100_000)

    # The LLM. Unset base URL -> the embedded local model.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout_s: float = Field(60.0, gt=0, le=600)
    llm_max_retries: int = Field(2, ge=0, le=10)
    # How ReAct steps are asked for (agents.protocol): auto picks what the backend enforces.
    agent_protocol: Literal["auto", "text", "json", "tools"] = "auto"
    local_model: Literal["small", "better"] = "better"  # model_files.DEFAULT_MODEL
    local_model_path: Path | None = None
    model_cache_dir: Path  # default: DATA_DIR/models
    local_threads: int | None = Field(None, ge=1, le=256)

    # Actions.
    allowed_actions: CommaList = BUILTIN_ACTIONS
    extra_tools: CommaList = ()  # "module:attribute" LangChain tools, operator-configured
    search_provider: Literal["duckduckgo", "searxng"] = "duckduckgo"
    searxng_url: str | None = None
    search_timeout_s: float = Field(8.0, gt=0, le=60)
    search_max_results: int = Field(5, ge=1, le=20)
    # Spacing between search calls, service-wide; unset: the provider's (DuckDuckGo 1 s, SearxNG 0).
    search_min_interval_s: float | None = Field(None, ge=0, le=60)
    # Retrieval over document collections (the retrieve action, when ALLOWED_ACTIONS lists it).
    retrieve_collections: CommaList = ()  # the caller's collections a run reads by default
    retrieve_top_k: int = Field(4, ge=1, le=20)  # passages per retrieve call
    retrieve_max_document_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    retrieve_max_pages: int = Field(2000, ge=1, le=100_000)  # a PDF's pages
    retrieve_parse_timeout_s: float = Field(60.0, gt=0, le=3600)  # parsing one HTML or PDF file
    # Vector ranking, fused with BM25 (service.collections): any OpenAI-compatible /v1/embeddings.
    embeddings_base_url: str | None = None  # unset: BM25 alone
    embeddings_model: str = Field("text-embedding-3-small", min_length=1, max_length=200)
    embeddings_api_key: SecretStr | None = None
    embeddings_timeout_s: float = Field(30.0, gt=0, le=600)
    embeddings_batch: int = Field(64, ge=1, le=2048)  # passages per request
    # Remote MCP tools as actions "name.tool" (only those ALLOWED_ACTIONS lists are usable).
    mcp_servers: CommaList = ()  # name=url,... (streamable HTTP)
    mcp_timeout_s: float = Field(10.0, gt=0, le=120)  # a whole call: connect, list, call

    # Budgets: request values are capped by these.
    default_max_steps: int = Field(8, ge=1, le=100)
    max_steps_limit: int = Field(20, ge=1, le=100)
    request_timeout_s: float = Field(120.0, gt=0, le=3600)
    max_question_chars: int = Field(4000, ge=1, le=100_000)
    max_samples: int = Field(8, ge=1, le=64)
    max_tokens: int = Field(768, ge=16, le=32_000)
    max_concurrent_runs: int = Field(16, ge=1, le=10_000)  # past it: 503, Retry-After
    # past it: 429. A quarter of the server: two clients at half each filled it (pass CV)
    max_concurrent_runs_per_client: int = Field(4, ge=1, le=10_000)
    token_budget_per_key: int | None = Field(None, ge=1)  # LLM tokens per client per UTC day

    # Conversation memory of threads (agents.memory).
    memory_strategy: Literal["buffer", "window", "tokens", "summary"] = "window"
    memory_window: int = Field(4, ge=1, le=100)  # turns kept verbatim (window, summary)
    memory_max_tokens: int = Field(1500, ge=64, le=100_000)  # budget of the tokens strategy

    # Access.
    agent_api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    # Who may read /metrics (an operator's keys); empty: any AGENT_API_KEYS key.
    metrics_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    # Serve without keys on an address other hosts can reach: the operator accepts the risk.
    allow_unauthenticated: bool = False
    rate_limit: str = "60/minute"  # per client (API key, else address); "" disables
    # Reads (GET) per client, in a window apart from runs' and writes'; "" disables. Unlimited,
    # one key reading its own large run 35 times a second made others' /ask 11x slower.
    read_rate_limit: str = "600/minute"
    # Where rate limits, run slots and budgets are counted: memory:// (this process) or
    # redis://host:port/db (shared by workers and replicas).
    rate_limit_storage_url: str = "memory://"
    # Failed API-key attempts per client address, then 429 for it (any key); "" disables.
    auth_failure_limit: str = "20/minute"
    # Host names served; empty: any with keys, this machine's without (/healthz answers any)
    allowed_hosts: CommaList = ()
    # Proxies (addresses or networks) whose X-Forwarded-For names the client; empty: none.
    forwarded_allow_ips: CommaList = ()
    database_url: str  # default: a SQLite file, DATA_DIR/runs.db
    # Runs (and threads untouched) older than this many days are deleted, hourly; None: kept.
    run_retention_days: float | None = Field(None, gt=0, le=36_500)

    # Files: the run store and the assembled model, unless set apart (agents/paths.py).
    data_dir: Path = Field(default_factory=default_data_dir)

    # Sandbox limits (see tools.sandbox.result.SandboxConfig).
    sandbox_workers: int = Field(2, ge=1, le=64)
    sandbox_queue_size: int = Field(32, ge=0, le=10_000)
    sandbox_timeout_s: float = Field(5.0, gt=0, le=300)
    sandbox_memory_mb: int = Field(512, ge=64, le=65_536)
    sandbox_max_output_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Start even when a required sandbox layer (seccomp, Landlock, rlimits) is missing.
    sandbox_allow_weak: bool = False

    @field_validator(
        "allowed_actions",
        "extra_tools",
        "agent_api_keys",
        "metrics_keys",
        "allowed_hosts",
        "mcp_servers",
        "retrieve_collections",
        "forwarded_allow_ips",
        mode="before",
    )
    @classmethod
    def _split_comma_lists(cls, value: object) -> object:
        return _split(value)

    @field_validator("allowed_actions")
    @classmethod
    def _normalise_actions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(v.lower() for v in value))
        if "finish" not in names:
            raise ValueError("ALLOWED_ACTIONS must include 'finish', or no run could end")
        return names

    @field_validator("mcp_servers")
    @classmethod
    def _mcp_servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_servers(value)  # McpConfigError (a ValueError) names the entry at fault
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Addresses or networks (``10.0.0.0/8``), or ``*``: fail at start-up on anything else
        (uvicorn would drop the entry and trust less than the operator meant)."""
        for entry in value:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(
                        f"FORWARDED_ALLOW_IPS: {entry!r} is not an address, a network or '*'"
                    ) from None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Fail at start-up on an entry that could never match a Host (a port, a scheme):
        served, it would turn every request away with a 400."""
        hosts = tuple(dict.fromkeys(v.lower() for v in value))
        for host in hosts:
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(
                    f"ALLOWED_HOSTS entry {host!r} is not a host name, an IP or '*.domain' "
                    "(no scheme, no port)"
                )
        return hosts

    @model_validator(mode="before")
    @classmethod
    def _paths_from_the_data_dir(cls, data: object) -> object:
        """Every default path is absolute, under one DATA_DIR, whatever the working
        directory; a relative DATA_DIR, MODEL_CACHE_DIR or LOCAL_MODEL_PATH is resolved once,
        here."""
        if not isinstance(data, dict):
            return data
        values = dict(data)
        given = values.get("data_dir")
        data_dir = Path(given).expanduser().resolve() if given else default_data_dir()
        values["data_dir"] = data_dir
        if not values.get("database_url"):
            values["database_url"] = f"sqlite+aiosqlite:///{data_dir / 'runs.db'}"
        cache = values.get("model_cache_dir")
        values["model_cache_dir"] = (
            Path(cache).expanduser().resolve() if cache else data_dir / "models"
        )
        if values.get("local_model_path"):
            values["local_model_path"] = Path(values["local_model_path"]).expanduser().resolve()
        return values

    @field_validator("llm_base_url", "searxng_url", "embeddings_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        if value != "memory://" and not re.fullmatch(r"rediss?://\S+", value):
            raise ValueError("must be memory:// or redis://host:port/db (rediss:// for TLS)")
        return value

    @field_validator("rate_limit", "read_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value:
            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a rate such as 60/minute") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.search_provider == "searxng" and not self.searxng_url:
            raise ValueError("SEARCH_PROVIDER=searxng needs SEARXNG_URL")
        if (self.workers or 1) > 1 and self.llm_base_url is None:
            raise ValueError(
                "WORKERS > 1 needs LLM_BASE_URL: each worker would load the embedded model "
                "(about 1 GB each) and they would share the same cores"
            )
        if self.default_max_steps > self.max_steps_limit:
            raise ValueError("DEFAULT_MAX_STEPS must not exceed MAX_STEPS_LIMIT")
        for name, keys in (
            ("AGENT_API_KEYS", self.agent_api_keys),
            ("METRICS_KEYS", self.metrics_keys),
        ):
            if any(len(key.get_secret_value()) < 16 for key in keys):
                raise ValueError(f"each {name} token must be at least 16 characters")
        if (
            not self.agent_api_keys
            and not self.allow_unauthenticated
            and not is_loopback(self.host)
        ):
            raise ValueError(
                f"HOST={self.host} lets other machines in, and no AGENT_API_KEYS are set: "
                "anyone who reaches it could run code in the sandbox and spend the LLM's "
                "budget. Set AGENT_API_KEYS (comma-separated tokens of 16+ characters), or "
                "ALLOW_UNAUTHENTICATED=true to accept that risk (e.g. behind a proxy that "
                "authenticates), or bind HOST=127.0.0.1"
            )
        return self

    def worker_count(self) -> int:
        if self.workers is not None:
            return self.workers
        return 1 if self.llm_base_url is None else max(1, len(os.sched_getaffinity(0)))

    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig(
            workers=self.sandbox_workers,
            queue_size=self.sandbox_queue_size,
            timeout_s=self.sandbox_timeout_s,
            memory_mb=self.sandbox_memory_mb,
            max_output_bytes=self.sandbox_max_output_bytes,
            allow_weak=self.sandbox_allow_weak,
        )


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``: ``localhost`` or a loopback IP. Any
    other name may resolve to an address others can reach, so it counts as exposed."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def describe_invalid(exc: ValidationError) -> str:
    """A settings error as the variables and what is wrong with them, one per line, and never
    the values: pydantic's own text repeats its input, API keys included."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = "_".join(str(part) for part in error.get("loc", ())).upper() or "settings"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
