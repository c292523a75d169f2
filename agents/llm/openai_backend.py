"""The OpenAI-compatible backend: ``OpenAILLM`` speaks ``/chat/completions`` through the
``openai`` SDK's async client to OpenAI, vLLM, Ollama, llama.cpp's server, LM Studio or LiteLLM.

What it guarantees:

- **One retry policy, with the SDK's rules.** The SDK's own retry loop is off
  (``max_retries=0``) because it cannot bound an attempt that trickles bytes, nor be told how to
  sleep; tenacity runs the loop and decides as the SDK does (a parity test checks the two
  against each other): a server's ``x-should-retry: true``/``false`` is obeyed first; then 408,
  409, 429 and 5xx are retried, as are connection errors and timeouts, up to ``max_retries``
  times with exponential backoff and jitter. A positive ``retry-after-ms`` / ``Retry-After``
  (seconds or an HTTP date) is the wait; one beyond ``retry_after_max_s`` (the SDK's limit is
  120 s) is not waited for, nor retried: the error is raised at once, saying how long the
  server asked for. Everything else fails at once.
- **A per-attempt timeout** (``timeout_s``) enforced twice: by the HTTP client and by
  ``asyncio.timeout`` around the attempt, so a server that trickles bytes, or a transport that
  never times out by itself, still cannot hold a call longer. The worst case for one
  ``complete()`` is about ``(max_retries + 1) * timeout_s`` plus backoff; callers with a total
  deadline wrap the call in ``asyncio.timeout``: cancellation is never caught or retried.
- **Stop sequences are honoured** even past OpenAI's limit of 4: the first 4 distinct ones are
  sent, and every returned text is also cut at the first occurrence of any of them, which
  covers servers that ignore ``stop``.
- **Errors are translated at this boundary** (``raise ... from exc``); nothing from ``openai``
  or ``httpx2`` leaks out:

      asyncio / SDK timeout            -> LLMTimeout
      429 RateLimitError               -> LLMRateLimited
      APIConnectionError               -> LLMConnectionError
      401/403, 404, no model known     -> LLMConfigError    (check key, LLM_BASE_URL, LLM_MODEL)
      other 4xx, 5xx                   -> LLMBadResponse    (status in the message)
      non-JSON body, no choices,
      a choice with neither text nor tool calls -> LLMBadResponse

- **n > 1**: asked of the server; a server that ignores ``n`` (llama.cpp, Ollama) returns
  fewer choices, and the missing ones are drawn with concurrent single calls.
- **Model choice**: with ``model=None`` (``LLM_MODEL`` unset) the first id listed by
  ``GET /models`` is used, fetched once (by ``check()`` or the first call, no retries); an
  empty list or a 4xx is an ``LLMConfigError`` asking for ``LLM_MODEL``, while an unreachable
  server stays an ``LLMConnectionError`` / ``LLMTimeout``.
- ``grammar`` is ignored: the OpenAI API has no GBNF parameter (llama.cpp's server has a
  non-standard one, which this backend does not send).
- ``response_schema`` is sent as ``response_format`` in the server's dialect: OpenAI's and
  vLLM's ``{"type": "json_schema", "json_schema": {...}}``, or llama-cpp-python's
  ``{"type": "json_object", "schema": ...}`` (its server answers the first with an error).
  ``probe()`` finds which one the server enforces, and whether it makes native tool calls,
  by asking it (see ``probe``); until a probe has run, OpenAI's dialect is sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeGuard

import httpx2
import openai
import structlog
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessage,
    ChatCompletionMessageCustomToolCall,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)
from openai.types.chat.chat_completion import Choice as APIChoice
from openai.types.completion_usage import CompletionUsage
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from agents.aio import gather_or_cancel
from agents.errors import (
    LLMBadResponse,
    LLMConfigError,
    LLMConnectionError,
    LLMError,
    LLMRateLimited,
    LLMServerError,
    LLMTimeout,
)
from agents.llm.base import ChatMessage, Choice, Completion, ToolCall, ToolSpec, Usage
from agents.llm.capabilities import (
    PROBE_MESSAGES,
    PROBE_SCHEMA,
    PROBE_TOOL,
    PROBE_TOOL_MESSAGES,
    Capabilities,
    SchemaDialect,
    is_probe_answer,
)

# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY: Final = "not-needed"
MAX_STOP_SEQUENCES: Final = 4  # the OpenAI API's limit
_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})  # plus every 5xx
_INFINITY_LITERALS: Final = frozenset({"inf", "+inf", "infinity", "+infinity"})

Sleep = Callable[[float], Awaitable[None]]
log = structlog.get_logger(__name__)


class OpenAILLM:
    """``agents.llm.base.LLM`` over any OpenAI-compatible ``/v1`` endpoint.

    ``http_client`` is for injection (tests pass one over ``httpx2.MockTransport``); it stays
    the caller's to close. ``sleep`` is what backoff waits with (tests record the delays).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 8.0,
        retry_after_max_s: float = 20.0,
        check_timeout_s: float = 5.0,
        http_client: httpx2.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if timeout_s <= 0 or check_timeout_s <= 0:
            raise LLMConfigError("LLM timeouts must be positive")
        if max_retries < 0:
            raise LLMConfigError("LLM max_retries must be >= 0")
        if min(backoff_initial_s, backoff_max_s, retry_after_max_s) < 0:
            raise LLMConfigError("LLM backoff delays must be >= 0")
        self._base_url = base_url.rstrip("/")
        self._model = model or ""
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._retry_after_max_s = retry_after_max_s
        self._check_timeout_s = check_timeout_s
        self._sleep = sleep
        # backoff_initial_s * 2**(attempt - 1) plus up to backoff_initial_s of jitter, capped
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s
        )
        self._owns_http_client = http_client is None
        self._schema_dialect: SchemaDialect = "openai"
        self._n_honoured = True  # until a reply to n > 1 holds fewer choices (supports_n)
        self._model_lock = asyncio.Lock()
        try:
            self._client = openai.AsyncOpenAI(
                base_url=self._base_url,
                api_key=api_key or PLACEHOLDER_API_KEY,
                timeout=timeout_s,
                max_retries=0,  # tenacity below is the only retry policy
                http_client=http_client,
            )
        except openai.OpenAIError as exc:
            raise LLMConfigError(f"cannot build the OpenAI client for {base_url}: {exc}") from exc

    @property
    def model(self) -> str:
        """The configured model, or the one found by ``GET /models`` ("" until then)."""
        return self._model

    @property
    def supports_n(self) -> bool:
        """Until the server is seen to ignore ``n`` (llama-cpp-python's answers one choice):
        then callers draw each sample themselves, as they can stop (pass EZ: a PAL vote
        already decided could not cancel the draws topped up inside one call)."""
        return self._n_honoured

    @property
    def supports_grammar(self) -> bool:
        return False

    @property
    def supports_tools(self) -> bool:
        return True

    @property
    def supports_prefill(self) -> bool:
        return False  # servers differ: most answer a final assistant message with a new turn

    @property
    def supports_warm_up(self) -> bool:
        return False  # a remote server's prompt cache is its own business

    async def warm_up(self, conversations: Sequence[Sequence[ChatMessage]]) -> int:
        return 0

    def count_tokens(self, text: str) -> int | None:
        """None: the OpenAI API exposes no tokenizer, and the server's model is not known here
        (guessing one, e.g. with tiktoken, would be wrong for most local servers); callers
        estimate (``agents.memory.estimate_tokens``)."""
        return None

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        max_tokens: int = 512,
        n: int = 1,
        tools: Sequence[ToolSpec] = (),
        grammar: str | None = None,  # ignored: see the module docstring
        response_schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        if n < 1:
            raise LLMError(f"n must be >= 1, got {n}")
        model = await self._resolve_model()
        stops = _distinct_stops(stop)
        request: dict[str, Any] = {
            "model": model,
            "messages": [_to_api_message(m) for m in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if stops:
            request["stop"] = stops[:MAX_STOP_SEQUENCES]
        if tools:
            request["tools"] = [_to_api_tool(t) for t in tools]
        if response_schema is not None:
            request["response_format"] = response_format(response_schema, self._schema_dialect)
        first = await self._with_retries(request, n)
        choices, usage = list(first.choices), first.usage
        missing = n - len(choices)
        if missing > 0:  # the server ignored n: draw the rest one by one, concurrently
            if self._n_honoured:
                log.info("the LLM server ignores n: samples are drawn one by one", model=model)
                self._n_honoured = False
            for completion in await self._draw_singles(request, missing):
                choices.extend(completion.choices)
                usage = usage + completion.usage
        return Completion(
            choices=tuple(_cut_at_stops(c, stops) for c in choices[:n]),
            usage=usage,
            requests=1 + max(missing, 0),
        )

    async def check(self) -> None:
        """Readiness probe: one ``GET /models`` within ``check_timeout_s``, no retries.

        With no model configured this is also where the model is chosen. A server without
        ``/models`` (404) is reachable, so it passes when a model is configured."""
        try:
            ids = await self._list_models()
        except LLMConfigError as exc:
            cause = exc.__cause__
            if self._model and isinstance(cause, openai.NotFoundError):
                return
            raise
        if not self._model:
            self._model = _first_model(ids, self._base_url)

    async def probe(self) -> Capabilities:
        """Ask the server what it enforces, with three short requests at most (no retries).

        A JSON schema whose only valid instance is ``{"answer": "<PROBE_ANSWER>"}`` goes with
        a question any model would answer otherwise ("What is 2 + 2?"): a server that enforces
        the schema returns that instance, one that ignores ``response_format`` returns "4".
        OpenAI's dialect is tried first; a server that refuses it (4xx) or ignores it is asked
        in llama-cpp-python's. Then one function is offered with an instruction to call it: a
        server whose chat format has no tool calls answers in prose. The dialect found is the
        one ``complete`` sends from then on. A server that cannot be reached, or that refuses
        the key, raises ``LLMError``: nothing is known, and the caller tries again later."""
        model = await self._resolve_model()
        base: dict[str, Any] = {
            "model": model,
            "messages": [_to_api_message(m) for m in PROBE_MESSAGES],
            "temperature": 0.0,
            "max_tokens": 32,
        }
        dialect: SchemaDialect | None = None
        for candidate in ("openai", "llama_cpp"):
            request = {**base, "response_format": response_format(PROBE_SCHEMA, candidate)}
            text = await self._probe_call(request)
            if text is not None and is_probe_answer(text):
                dialect = candidate
                break
        if dialect is not None:
            self._schema_dialect = dialect
        tool_request = {
            **base,
            "messages": [_to_api_message(m) for m in PROBE_TOOL_MESSAGES],
            "tools": [_to_api_tool(PROBE_TOOL)],
            "max_tokens": 64,
        }
        completion = await self._probe_completion(tool_request)
        calls = (
            [call for choice in completion.choices for call in choice.tool_calls]
            if completion
            else []
        )
        tools = any(call.name == PROBE_TOOL.name for call in calls)
        return Capabilities(grammar=False, json_schema=dialect, tools=tools, probed=True)

    async def _probe_call(self, request: dict[str, Any]) -> str | None:
        completion = await self._probe_completion(request)
        return completion.text if completion is not None else None

    async def _probe_completion(self, request: dict[str, Any]) -> Completion | None:
        """One attempt; None when the server refuses the request itself (400, 422: it does
        not take that parameter) or answers with something unusable."""
        try:
            return await self._attempt(request, 1)
        except LLMServerError as exc:  # before LLMBadResponse, its base class
            cause = exc.__cause__
            if isinstance(cause, openai.APIStatusError) and cause.status_code == 500:
                return None  # a server may fail on a parameter it does not know
            raise  # 502, 503, 504: down or overloaded, which says nothing about the parameter
        except LLMBadResponse:
            return None
        except LLMConfigError as exc:
            if isinstance(exc.__cause__, openai.NotFoundError):
                return None  # some servers answer 404 to a parameter they do not know
            raise

    async def aclose(self) -> None:
        if self._owns_http_client:
            await self._client.close()

    # -- internals --------------------------------------------------------------------------

    async def _resolve_model(self) -> str:
        if self._model:
            return self._model
        async with self._model_lock:
            if not self._model:
                try:
                    ids = await self._list_models()
                except LLMError as exc:
                    if _is_transient(exc):  # the server is down, not misconfigured
                        raise
                    raise LLMConfigError(
                        f"LLM_MODEL is not set and {self._base_url}/models could not be read "
                        f"({exc}); set LLM_MODEL"
                    ) from exc
                self._model = _first_model(ids, self._base_url)
        return self._model

    async def _list_models(self) -> list[str]:
        try:
            async with asyncio.timeout(self._check_timeout_s):
                page = await self._client.models.list(timeout=self._check_timeout_s)
        except TimeoutError as exc:
            raise LLMTimeout(
                f"{self._base_url}/models did not answer within {self._check_timeout_s:g} s"
            ) from exc
        except (openai.OpenAIError, httpx2.HTTPError, ValueError) as exc:
            raise _translate(exc, self._base_url) from exc
        data: object = getattr(page, "data", None)
        if not isinstance(data, list):
            raise LLMBadResponse(f"{self._base_url}/models answered without a model list")
        return [m.id for m in data if isinstance(getattr(m, "id", None), str)]

    async def _draw_singles(self, request: dict[str, Any], count: int) -> list[Completion]:
        """``count`` concurrent n=1 calls; on the first failure the others are cancelled."""
        return await gather_or_cancel(*(self._with_retries(request, 1) for _ in range(count)))

    async def _with_retries(self, request: dict[str, Any], n: int) -> Completion:
        retrying = AsyncRetrying(  # one per call: tenacity keeps per-run state on it
            stop=stop_after_attempt(self._max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            sleep=self._sleep,
            retry_error_callback=_give_up,
        )
        try:
            result: Completion = await retrying(self._attempt, request, n)
        except LLMError as exc:
            cause = exc.__cause__
            wait = _retry_after_s(cause.response.headers) if _has_response(cause) else None
            if wait is not None and wait > self._retry_after_max_s:
                raise type(exc)(
                    f"{exc}; the server asked to retry after {wait:g} s, longer than this "
                    f"client waits ({self._retry_after_max_s:g} s)"
                ) from cause
            raise
        return result

    def _retryable(self, exc: BaseException) -> bool:
        cause = exc.__cause__
        if isinstance(cause, openai.APIStatusError):
            return should_retry(cause.response, retry_after_max_s=self._retry_after_max_s)
        return isinstance(exc, LLMTimeout | LLMConnectionError)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        cause = exc.__cause__ if exc else None
        if isinstance(cause, openai.APIStatusError):
            retry_after = _retry_after_s(cause.response.headers)
            if retry_after is not None and 0 < retry_after <= self._retry_after_max_s:
                return retry_after  # the server's wait (a longer one is not retried)
        return float(self._backoff(state))

    async def _attempt(self, request: dict[str, Any], n: int) -> Completion:
        params = dict(request)
        if n > 1:
            params["n"] = n
        try:
            async with asyncio.timeout(self._timeout_s):
                raw: object = await self._client.chat.completions.create(**params)
        except TimeoutError as exc:  # our own deadline; an outer one arrives as CancelledError
            raise LLMTimeout(
                f"{self._base_url} did not answer within {self._timeout_s:g} s"
            ) from exc
        except (openai.OpenAIError, httpx2.HTTPError, ValueError) as exc:
            raise _translate(exc, self._base_url) from exc
        return _to_completion(raw, self._base_url)


# -- retry policy ---------------------------------------------------------------------------


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt? Decided by type, HTTP status and headers, never by message."""
    cause = exc.__cause__
    if isinstance(cause, openai.APIStatusError):
        return should_retry(cause.response, retry_after_max_s=math.inf)
    return isinstance(exc, LLMTimeout | LLMConnectionError)


def _has_response(cause: BaseException | None) -> TypeGuard[openai.APIStatusError]:
    return isinstance(cause, openai.APIStatusError)


def should_retry(response: httpx2.Response, *, retry_after_max_s: float) -> bool:
    """The SDK's rules for an HTTP error (``openai._base_client._should_retry``): a wait
    beyond the maximum is not retried, ``x-should-retry`` is obeyed, then 408, 409, 429, 5xx."""
    retry_after = _retry_after_s(response.headers)
    if retry_after is not None and retry_after > retry_after_max_s:
        return False
    header = response.headers.get("x-should-retry")
    if header in ("true", "false"):
        return header == "true"
    return response.status_code in _RETRYABLE_STATUS or response.status_code >= 500


def _give_up(state: RetryCallState) -> Completion:
    """Re-raise the last error, saying how many attempts were made."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, LLMError):
        raise type(exc)(f"{exc} (after {state.attempt_number} attempts)") from exc.__cause__
    raise LLMError(f"LLM call failed after {state.attempt_number} attempts") from exc


def _retry_after_s(headers: httpx2.Headers) -> float | None:
    """Seconds from ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date), as the
    SDK reads them; a number too large for a float counts as too long, not as absent."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds):
            return seconds
        if math.isinf(seconds) and value.strip().lower() not in _INFINITY_LITERALS:
            return math.inf  # a number too large for a float: far too long to wait
        return None  # a literal infinity or NaN: ignored, as the SDK does
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return email.utils.mktime_tz(parsed) - time.time()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# -- error translation ----------------------------------------------------------------------


def _translate(exc: Exception, base_url: str) -> LLMError:
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeout(f"{base_url} timed out")
    if isinstance(exc, openai.APIConnectionError):
        return LLMConnectionError(f"cannot reach {base_url}: {exc.message}")
    if isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, _status_detail(exc)
        if status == 429:
            return LLMRateLimited(f"{base_url} is rate limiting (HTTP 429): {detail}")
        if status in (401, 403):
            return LLMConfigError(f"{base_url} refused the API key (HTTP {status}): {detail}")
        if status == 404:
            return LLMConfigError(f"{base_url} has no such endpoint or model (HTTP 404): {detail}")
        if status >= 500:
            return LLMServerError(f"{base_url} answered HTTP {status}: {detail}")
        return LLMBadResponse(f"{base_url} answered HTTP {status}: {detail}")
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return LLMBadResponse(f"{base_url} answered with a malformed body: {exc}")
    if isinstance(exc, httpx2.HTTPError):
        return LLMConnectionError(f"HTTP failure talking to {base_url}: {exc}")
    return LLMError(f"{base_url}: {exc}")


def _status_detail(exc: openai.APIStatusError) -> str:
    """The server's own error message when it sent one, else the SDK's summary."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return message[:300] if isinstance(message, str) else exc.message[:300]


# -- request mapping ------------------------------------------------------------------------


def _to_api_message(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    if message.role == "tool":
        if not message.tool_call_id:
            raise LLMError("a tool message needs the tool_call_id it answers")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        calls: list[ChatCompletionMessageFunctionToolCallParam] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        return {"role": "assistant", "content": message.content or None, "tool_calls": calls}
    return {"role": "assistant", "content": message.content}


def response_format(schema: Mapping[str, Any], dialect: SchemaDialect) -> dict[str, Any]:
    """``schema`` as the server's ``response_format`` (see the module docstring)."""
    if dialect == "llama_cpp":
        return {"type": "json_object", "schema": dict(schema)}
    return {
        "type": "json_schema",
        "json_schema": {"name": "step", "schema": dict(schema), "strict": True},
    }


def _to_api_tool(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _distinct_stops(stop: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(s for s in stop if s))


# -- response mapping -----------------------------------------------------------------------


def _to_completion(raw: object, base_url: str) -> Completion:
    """The SDK builds its models leniently (no validation), so every field is checked here."""
    if not isinstance(raw, ChatCompletion):
        shown = raw[:80] if isinstance(raw, str) else type(raw).__name__
        raise LLMBadResponse(f"{base_url} answered with something that is not JSON: {shown!r}")
    api_choices: object = raw.choices
    if not isinstance(api_choices, list) or not api_choices:
        raise LLMBadResponse(f"{base_url} answered with no choices")
    choices = tuple(_to_choice(c, base_url) for c in api_choices)
    return Completion(choices=choices, usage=_to_usage(raw.usage))


def _to_choice(raw: object, base_url: str) -> Choice:
    message: object = getattr(raw, "message", None) if isinstance(raw, APIChoice) else None
    if not isinstance(message, ChatCompletionMessage):
        raise LLMBadResponse(f"{base_url} answered with a choice that has no message")
    content: object = message.content
    if content is not None and not isinstance(content, str):
        raise LLMBadResponse(f"{base_url} answered with non-text content")
    calls = _to_tool_calls(message.tool_calls, base_url)
    if content is None and not calls:
        refusal = message.refusal if isinstance(message.refusal, str) else None
        why = f"the model refused: {refusal}" if refusal else "no content and no tool calls"
        raise LLMBadResponse(f"{base_url} answered with an empty message ({why})")
    reason: object = raw.finish_reason if isinstance(raw, APIChoice) else None
    return Choice(
        text=_valid_text(content or ""),
        tool_calls=calls,
        finish_reason=reason if isinstance(reason, str) else None,
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_text(text: str) -> str:
    """The model's text as valid Unicode: JSON may carry lone surrogates (``"\\ud800"``),
    which no UTF-8 encoder takes, so one reply would make its run unstorable and unservable;
    each becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _to_tool_calls(raw: object, base_url: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise LLMBadResponse(f"{base_url} answered with malformed tool_calls")
    calls = []
    for i, call in enumerate(raw):
        if isinstance(call, ChatCompletionMessageFunctionToolCall):
            name: object = getattr(call.function, "name", None)
            arguments: object = getattr(call.function, "arguments", None)
        elif isinstance(call, ChatCompletionMessageCustomToolCall):
            name = getattr(call.custom, "name", None)
            arguments = getattr(call.custom, "input", None)
        else:
            raise LLMBadResponse(f"{base_url} answered with a malformed tool call")
        if isinstance(arguments, dict):  # some servers send an object, not JSON text
            arguments = json.dumps(arguments)
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise LLMBadResponse(f"{base_url} answered with a tool call lacking name or arguments")
        call_id: object = call.id
        calls.append(
            ToolCall(
                id=_valid_text(call_id) if isinstance(call_id, str) else f"call_{i}",
                name=_valid_text(name),
                arguments=_valid_text(arguments),
            )
        )
    return tuple(calls)


def _to_usage(raw: object) -> Usage:
    if not isinstance(raw, CompletionUsage):
        return Usage()
    prompt: object = raw.prompt_tokens
    completion: object = raw.completion_tokens
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else 0,
        completion_tokens=completion if isinstance(completion, int) else 0,
    )


def _cut_at_stops(choice: Choice, stops: Sequence[str]) -> Choice:
    """Cut the text at the first stop sequence, for servers that ignore ``stop`` and for
    the stop sequences beyond the API's limit of 4."""
    cut = min((i for i in (choice.text.find(s) for s in stops) if i >= 0), default=-1)
    if cut < 0:
        return choice
    return Choice(text=choice.text[:cut], tool_calls=choice.tool_calls, finish_reason="stop")


def _first_model(ids: list[str], base_url: str) -> str:
    if not ids:
        raise LLMConfigError(f"LLM_MODEL is not set and {base_url}/models lists no model")
    return ids[0]
