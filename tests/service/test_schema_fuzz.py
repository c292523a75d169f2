"""Schema fuzzing: schemathesis generates requests for every operation of ``/openapi.json`` and
sends them to the real ASGI app in-process (lifespan, middleware, auth, the run store, the real
sandbox, the real ``openai`` client in front of a scripted fake LLM that finishes at once, a
fake search provider). Offline and deterministic: ``deterministic`` generation (Hypothesis'
``derandomize``), no example database, a bounded number of examples per operation.

Every response must pass schemathesis' default checks: not a server error, a status code the
schema documents for the operation, the documented content type, a body valid against the
documented schema, documented response headers, invalid input rejected, schema-valid input
accepted, unsupported methods answered with 405. Two of them are narrowed, each to one case the
contract defines (see the checks below): a 504 when the request itself asked for a sub-second
deadline, and a 422 for a limit the schema cannot express (a question longer than
``MAX_QUESTION_CHARS``, more PAL samples than ``MAX_SAMPLES``).

Streaming (SSE): schemathesis' ASGI client reads an event stream up to ``max-stream-events``
events or ``request-timeout`` seconds, so a stream that never ends cannot hang the suite; with
the fake LLM every stream ends by itself well within both, and a stream cut short fails, since
its last event is not ``final``. Each streamed ``/ask`` must send ``run`` first and ``final``
last, whose data must validate against the published ``AskResponse``. Every ``/ask`` answered
200 with JSON is sent again with ``Accept: text/event-stream`` (without keys; auth changes
nothing there), so streaming is fuzzed as much as JSON, and its stored run is fetched from
``GET /runs/{run_id}`` and checked like any response.

Three ways in: no keys configured; keys configured and a valid one sent; keys configured and
none, a wrong one or a malformed header sent (then 401 on everything but health, never 5xx).
``/openapi.json`` and ``/docs``, outside the schema, are checked directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.app import create_app, openapi_schema
from service.schemas import AskRequest
from service.settings import Settings
from tests.fakes import FakeOpenAI, FakeRequest, make_llm
from tests.fakes.search import FakeSearchProvider, result

KEY = "fuzz-key-0123456789abcdef"
CREDENTIALS: dict[str, dict[str, str]] = {
    "none": {},
    "valid": {"Authorization": f"Bearer {KEY}"},
    "missing": {},
    "wrong": {"Authorization": "Bearer " + "x" * 24},
    "malformed": {"Authorization": f"Basic {KEY}"},
}
PUBLIC = {"/healthz", "/readyz"}  # no API key needed (README, AGENT_API_KEYS)
PROBLEM = "application/problem+json"
SSE = "text/event-stream"
# A deadline shorter than this may pass before the (instant) fake LLM and the sandbox are done:
# the 504 is then the documented answer to the client's own choice. A longer deadline that
# passes means something hung, and fails like any other 5xx.
CLIENT_DEADLINE_S = 1.0


def _settings(database_dir: Path | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_base_url": FakeOpenAI.base_url,
        "rate_limit": "",  # 429s would hide the paths behind them; test_ask covers the limit
        "read_rate_limit": "",  # likewise; test_runs_api covers it
        "auth_failure_limit": "",  # likewise for wrong keys; test_probe_auth_metrics covers it
        "sandbox_workers": 2,
        "sandbox_timeout_s": 3.0,
        "request_timeout_s": 20.0,
        "shutdown_grace_s": 0,
    }
    if database_dir is not None:
        values["database_url"] = f"sqlite+aiosqlite:///{database_dir}/runs.db"
    values.update(overrides)
    return Settings(**values)


def _config(*, mode: str, max_examples: int, coverage: bool = True) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "generation": {
                "mode": mode,  # "all": schema-valid and schema-violating requests
                "max-examples": max_examples,  # per operation, in the fuzzing phase
                "deterministic": True,
                "database": "none",
            },
            # examples, coverage (boundaries, each constraint broken, other methods), fuzzing
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"enabled": False}},
            "max-stream-events": 64,
            "request-timeout": 20,
        }
    )


SETTINGS = _settings()
# What GET /openapi.json serves (test_openapi_json_is_the_fuzzed_schema checks it).
RAW_SCHEMA = openapi_schema(SETTINGS)
SCHEMA = schemathesis.openapi.from_dict(
    json.loads(json.dumps(RAW_SCHEMA)), config=_config(mode="all", max_examples=25)
)
UNAUTHENTICATED = schemathesis.openapi.from_dict(
    json.loads(json.dumps(RAW_SCHEMA)),
    config=_config(mode="positive", max_examples=5, coverage=False),
)
GET_RUN = SCHEMA["/runs/{run_id}"]["GET"]


def _llm_reply(request: FakeRequest) -> str:
    """Finish at once: ReAct answers with ``finish``; PAL writes a tiny program."""
    last = str(request.messages[-1].get("content", "")) if request.messages else ""
    if "Running the program gave:" in last:  # PAL verbalize
        return "The answer is 42."
    if "def solution" in request.text:  # the PAL few-shot prompt
        return "```python\ndef solution():\n    return 6 * 7\n```"
    return "Thought: I know this.\nAction: finish[42]"


@dataclass
class Deployment:
    name: str
    client: asgi.ASGIClient


@pytest.fixture(scope="module")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Deployment]]:
    """``deployments("open" | "keyed")``: one app per configuration for the whole module,
    started on first use. schemathesis' ASGI client runs its lifespan (sandbox, run store) in
    its own event-loop thread, where the requests run too; all are shut down at the end."""
    started: dict[str, Deployment] = {}

    def get(name: str) -> Deployment:
        if name not in started:
            # schemathesis' ASGI client names the host "testserver"; a server without keys
            # answers only the names it is given (service.hosts.LocalBrowserGuard)
            keys = {"agent_api_keys": KEY} if name == "keyed" else {"allowed_hosts": "testserver"}
            app = create_app(
                _settings(tmp_path_factory.mktemp(f"fuzz-{name}"), **keys),
                llm=make_llm(FakeOpenAI(_llm_reply)),
                search_provider=FakeSearchProvider(default=[result(1), result(2)]),
            )
            client = stack.enter_context(asgi.get_client(app))  # starts the lifespan
            started[name] = Deployment(name, client)
        return started[name]

    with ExitStack() as stack:
        try:
            yield get
        finally:
            asgi.shutdown_lifespans()


# -- checks ---------------------------------------------------------------------------------


@schemathesis.check
def not_a_server_error_but_a_short_deadline(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """schemathesis' ``not_a_server_error``, except a 504 for a sub-second ``timeout_s``."""
    deadline = case.body.get("timeout_s") if isinstance(case.body, dict) else None
    if (
        response.status_code == 504
        and type(deadline) in (int, float)
        and deadline < CLIENT_DEADLINE_S
        and "deadline" in _detail(response)
    ):
        return True
    return not_a_server_error(ctx, response, case)


@schemathesis.check
def schema_valid_requests_are_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """schemathesis' ``positive_data_acceptance``, except the 422s for what the schema cannot
    say: a question that is blank once stripped, or longer than MAX_QUESTION_CHARS, or more
    PAL samples than MAX_SAMPLES; each only when it is true of the request, with its detail."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        reason = _over_a_server_limit(case.body) or _not_what_the_server_issued(case)
        if response.status_code == 422 and reason and reason in _detail(response):
            return True
        if _a_file_it_cannot_read(case, response):
            return True
        raise


def _a_file_it_cannot_read(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    """What an uploaded document holds, which the schema's ``binary`` cannot say: a kind the
    service does not read (415), or no text it can use (422), each with its own detail."""
    if case.method.upper() != "POST" or not case.path.endswith("/documents"):
        return False
    detail = _detail(response)
    unreadable = ("holds no text", "cannot be read", "could not be parsed", "control characters")
    if response.status_code == 415:
        return "unsupported file" in detail
    return response.status_code == 422 and any(words in detail for words in unreadable)


def _not_what_the_server_issued(case: schemathesis.Case) -> str | None:
    """Values only the server can make valid: a page cursor, an event id; and a feedback
    body that names no field at all."""
    if (case.query or {}).get("cursor") is not None:
        return "cursor is not one this server handed out"
    if (case.query or {}).get("since") is not None:  # RFC 3339 beyond Python's ISO 8601
        return "since must be an ISO 8601 date or date-time"
    if (case.headers or {}).get("last-event-id") is not None:
        return "Last-Event-ID must be an event's sequence number"
    if (
        case.path.endswith("/feedback")
        and isinstance(case.body, dict)
        and not any(
            case.body.get(k) is not None for k in ("score", "rating", "comment", "correction")
        )
    ):
        return "give at least one of"
    return None


def _over_a_server_limit(body: object) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("question"), str):
        return None
    # a blank question breaks the published pattern; the limit counts the blanks around it
    if len(body["question"]) > SETTINGS.max_question_chars:
        return "longer than the limit"
    if body.get("samples", 1) > SETTINGS.max_samples:
        return "above the server's limit"
    return None


@schemathesis.check
def stream_ends_with_a_valid_final_event(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A streamed /ask: ``run`` first, ``final`` last, whose data is a valid AskResponse."""
    if not _content_type(response).startswith(SSE):
        return None
    if case.path.startswith("/v1/"):
        return _openai_stream_ends_with_done(response)
    events: list[tuple[str, str]] = []
    for block in response.text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line[1:])
        if "event" in fields:
            events.append((fields["event"].strip(), fields.get("data", "").strip()))
    names = [name for name, _ in events]
    assert names and names[0] == "run" and names[-1] == "final", f"stream events: {names}"
    final = json.loads(events[-1][1])
    jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/AskResponse", "components": RAW_SCHEMA["components"]}
    ).validate(final)
    return True


def _openai_stream_ends_with_done(response: schemathesis.Response) -> bool:
    """A streamed /v1/chat/completions: ``data:`` lines only, each a chunk (or an error) as
    JSON, the last one ``[DONE]``."""
    blocks = [b for b in response.text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    data = [b.removeprefix("data: ") for b in blocks if not b.startswith(":")]
    assert data and data[-1] == "[DONE]", f"stream: {data[-3:]}"
    for item in data[:-1]:
        chunk = json.loads(item)
        assert chunk.get("object") == "chat.completion.chunk" or "error" in chunk, chunk
    return True


def _content_type(response: schemathesis.Response) -> str:
    return (response.headers.get("content-type") or [""])[0]


def _detail(response: schemathesis.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except (ValueError, AttributeError):
        return ""


def _call(
    case: schemathesis.Case, deployment: Deployment, headers: dict[str, str]
) -> schemathesis.Response:
    return case.call_and_validate(
        session=deployment.client,
        headers=headers,
        excluded_checks=[not_a_server_error, positive_data_acceptance],
        additional_checks=[
            not_a_server_error_but_a_short_deadline,
            schema_valid_requests_are_accepted,
            stream_ends_with_a_valid_final_event,
        ],
    )


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "credentials"), [("open", "none"), ("keyed", "valid")])
@SCHEMA.parametrize()
def test_every_operation_conforms(
    case: schemathesis.Case, deployments: Callable[[str], Deployment], config: str, credentials: str
) -> None:
    deployment, headers = deployments(config), CREDENTIALS[credentials]
    response = _call(case, deployment, headers)
    ran = case.operation.label == "POST /ask" and response.status_code == 200
    if ran and not _content_type(response).startswith(SSE):
        if config == "open":  # the same request streamed, asked for by the Accept header
            _call(case, deployment, {**headers, "Accept": SSE})
        run_id = response.json()["run_id"]
        stored = _call(GET_RUN.Case(path_parameters={"run_id": run_id}), deployment, headers)
        assert stored.status_code == 200, stored.text


@pytest.mark.parametrize("credentials", ["missing", "wrong", "malformed"])
@UNAUTHENTICATED.parametrize()
def test_without_a_valid_key_only_health_answers(
    case: schemathesis.Case, deployments: Callable[[str], Deployment], credentials: str
) -> None:
    response = _call(case, deployments("keyed"), CREDENTIALS[credentials])
    if case.path in PUBLIC or response.status_code == 405:
        assert response.status_code in (200, 405), response.text
    else:
        assert response.status_code == 401, response.text
        assert _content_type(response).startswith(PROBLEM)
        assert response.headers["www-authenticate"][0].startswith("Bearer")


@pytest.mark.parametrize(("config", "credentials"), [("open", "none"), ("keyed", "valid")])
def test_openapi_json_is_the_fuzzed_schema(
    deployments: Callable[[str], Deployment], config: str, credentials: str
) -> None:
    """The routes outside the schema: /openapi.json serves what was fuzzed; it and the doc
    pages are public, whatever credentials come with the request."""
    client = deployments(config).client
    served = client.get("/openapi.json", headers=CREDENTIALS[credentials])
    assert served.status_code == 200
    if config == "open":
        assert served.json() == RAW_SCHEMA  # no key to declare
    else:
        keyed = served.json()
        assert keyed["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        for path, operations in keyed["paths"].items():
            for method, operation in operations.items():
                declared = operation.get("security") == [{"apiKey": []}]
                assert declared is (path not in PUBLIC), (method, path)
        for operations in keyed["paths"].values():
            for operation in operations.values():
                operation.pop("security", None)
        keyed["components"].pop("securitySchemes")
        assert keyed == RAW_SCHEMA  # the same API otherwise
    for wrong in ("none", "missing", "wrong", "malformed") if config == "keyed" else ("none",):
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert client.get(path, headers=CREDENTIALS[wrong]).status_code == 200, (path, wrong)


def test_errors_are_documented_as_the_problem_documents_they_are() -> None:
    """Every documented error is ``application/problem+json`` with the Problem schema (not
    FastAPI's default JSON 422), each route lists the errors it sends, and /metrics is text."""
    problem = RAW_SCHEMA["paths"]["/ask"]["post"]["responses"]["422"]["content"]
    assert list(problem) == [PROBLEM]
    assert {"title", "status", "detail"} <= set(problem[PROBLEM]["schema"]["required"])
    errors = {
        f"{method.upper()} {path}": {
            int(status)
            for status, response in operation["responses"].items()
            if int(status) >= 400 and list(response.get("content", {})) == [PROBLEM]
        }
        for path, operations in RAW_SCHEMA["paths"].items()
        for method, operation in operations.items()
    }
    assert errors["POST /ask"] >= {400, 401, 403, 413, 422, 429, 502, 504}
    assert errors["GET /runs/{run_id}"] >= {401, 404, 422}
    assert errors["GET /actions"] >= {401}
    assert errors["GET /metrics"] >= {401}
    metrics = RAW_SCHEMA["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("question", question)
        for question in ("\r", " \t\n", "\u3000", "\ufeff", "\u00a0", " q ", "q\r\n", "\u2028x")
    ]
    + [("actions", [name]) for name in (" ", "\t", "\u3000", " python ", "python")],
)
def test_the_published_schema_refuses_what_the_server_calls_blank(
    field: str, value: object
) -> None:
    """A blank question or action name breaks the published schema exactly when the server
    refuses it (pass EY: "\r" and " " matched the schema and were 422s)."""
    published = RAW_SCHEMA["components"]["schemas"]["AskRequest"]["properties"][field]
    valid = jsonschema.Draft202012Validator(published).is_valid(value)
    body = {"question": "q", field: value}
    try:
        AskRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        assert not valid, f"the schema takes {value!r}, the server refuses it: {exc}"
    else:
        assert valid, f"the server takes {value!r}, the schema refuses it"
