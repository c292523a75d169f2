"""Request and response bodies of the OpenAI-compatible door (``/v1/chat/completions``,
``/v1/models``), as OpenAI's API defines them, so that its SDKs, LangChain, LiteLLM and chat
UIs can use the agent as a model.

What the agent cannot honour is refused with a message that says why (``tools``: the agent
chooses its own actions; ``n`` > 1; a JSON ``response_format``; ``logprobs``; tool and
function messages); what does not apply is accepted and ignored (``temperature``,
``max_tokens``, ``user``, unknown fields). Every refusal is also written into the published
schema, so that what it calls valid the server accepts. Nothing here runs anything: the
route (``service.routes.openai_compat``) turns a request into an ``AskRequest`` and a
conversation into the run's memory.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)
from pydantic.config import JsonDict

from agents.memory import Turn
from service.schemas import CollectionName, Integral, Problem

MODELS = {"reactpal-react": "react", "reactpal-pal": "pal"}  # model id -> the run's mode
OWNER = "reactpal"

# A message's text may hold no control character but tab and line breaks (as a question to
# /ask), and a user message must hold more than whitespace. Checked by the validators below,
# with messages that say so; published as patterns (ECMA-262), spelled out rather than with
# ``\s`` so that "blank" means what ``str.strip`` strips.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_ALLOWED = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_VISIBLE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
TEXT_PATTERN = f"^{_ALLOWED}*$"
NON_BLANK_PATTERN = f"^{_ALLOWED}*{_VISIBLE}{_ALLOWED}*$"

TOOLS_REFUSED = (
    "not supported: the agent chooses its own actions (python, search, ...) from the "
    "server's allow-list and answers in text"
)


def _text(pattern: str) -> Any:
    return WithJsonSchema({"type": "string", "pattern": pattern})


class TextPart(BaseModel):
    """A text content part; images, audio and files are not supported."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["text"] = Field(description="Only `text` parts are supported.")
    text: Annotated[str, _text(TEXT_PATTERN)]


class UserTextPart(TextPart):
    text: Annotated[str, _text(NON_BLANK_PATTERN)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    name: str | None = Field(None, description="Accepted and ignored.")

    @property
    def text(self) -> str:
        content: Any = getattr(self, "content", None)
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "\n".join(part.text for part in content)

    @field_validator("content", check_fields=False)
    @classmethod
    def _no_control(cls, value: Any) -> Any:
        texts = [value] if isinstance(value, str) else [p.text for p in value or ()]
        for text in texts:
            if found := _CONTROL.search(text):
                raise ValueError(
                    f"the content contains the control character U+{ord(found.group()):04X}; "
                    "only tabs and line breaks are allowed"
                )
        return value


class SystemMessage(_Message):
    """Accepted and ignored: the agent's own instructions govern the run."""

    role: Literal["system", "developer"]
    content: Annotated[str, _text(TEXT_PATTERN)] | list[TextPart]


class UserMessage(_Message):
    """The last one is the question; earlier ones, with the answers after them, the run's
    memory."""

    role: Literal["user"]
    content: (
        Annotated[str, _text(NON_BLANK_PATTERN)]
        | Annotated[list[UserTextPart], Field(min_length=1)]
    )

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        texts = [value] if isinstance(value, str) else [p.text for p in value]
        if any(not text.strip() for text in texts):
            raise ValueError("a user message must not be blank: the last one is the question")
        return value


class AssistantMessage(_Message):
    """An earlier answer: the run's memory pairs it with the user message before it."""

    role: Literal["assistant"]
    content: Annotated[str, _text(TEXT_PATTERN)] | list[TextPart] | None = None
    refusal: str | None = Field(None, description="Accepted and ignored.")
    tool_calls: list[Any] | None = Field(
        None,
        description="Not supported: must be absent, null or empty.",
        json_schema_extra={"maxItems": 0},
    )
    function_call: None = Field(None, description="Not supported: must be absent or null.")

    @field_validator("tool_calls")
    @classmethod
    def _no_tool_calls(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError(TOOLS_REFUSED)
        return value


Message = Annotated[SystemMessage | UserMessage | AssistantMessage, Field(discriminator="role")]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool | None = Field(
        None, description="Send a last chunk with the run's `usage` and no choices."
    )


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["text"] = Field(
        description="Only `text`: the answer is the agent's, not a JSON document."
    )


_USER_MESSAGE: JsonDict = {
    "type": "object",
    "properties": {"role": {"const": "user"}},
    "required": ["role"],
}


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. ``model`` picks the agent's mode; the last user
    message is the question; the messages before it are the run's memory."""

    model_config = ConfigDict(
        extra="allow",  # OpenAI's newer fields (seed, stop, metadata, ...): accepted, ignored
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "model": "reactpal-pal",
                    "messages": [{"role": "user", "content": "What is 1234 * 5678?"}],
                },
                {
                    "model": "reactpal-react",
                    "messages": [
                        {"role": "user", "content": "How many days are in 2024?"},
                        {"role": "assistant", "content": "366"},
                        {"role": "user", "content": "And in 2023?"},
                    ],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            ]
        },
    )

    model: str = Field(
        description="`reactpal-react` (reason and act) or `reactpal-pal` (one program); "
        "another is a 404 `model_not_found`.",
        json_schema_extra={"enum": list(MODELS)},
    )
    messages: list[Message] = Field(
        min_length=1,
        description="The last `user` message is the question (at most the server's "
        "MAX_QUESTION_CHARS); the user and assistant messages before it are the run's memory "
        "(MEMORY_STRATEGY chooses what the model sees of them); `system` and `developer` "
        "messages are ignored, and so is what follows the last user message. `tool` and "
        "`function` messages are not supported.",
        json_schema_extra={"contains": _USER_MESSAGE},
    )
    collections: list[CollectionName] | None = Field(
        None,
        max_length=16,
        description="reactpal's own field (with OpenAI's SDK: `extra_body`): your document "
        "collections the retrieve action reads, as on `POST /ask`.",
    )
    stream: bool | None = Field(
        False,
        description="Server-sent `chat.completion.chunk` events: the run's steps as "
        "`delta.reasoning_content` as they happen, then the answer as `delta.content`, then "
        "`data: [DONE]`.",
    )
    stream_options: StreamOptions | None = None
    n: Annotated[int, Integral] | None = Field(
        1,
        description="Must be 1: a completion is one run, with one answer.",
        json_schema_extra={"minimum": 1, "maximum": 1},
    )
    max_tokens: Annotated[int, Integral] | None = Field(
        None, description="Accepted and ignored: the server's MAX_TOKENS bounds each LLM call."
    )
    max_completion_tokens: Annotated[int, Integral] | None = Field(
        None, description="Accepted and ignored, as `max_tokens`."
    )
    temperature: float | None = Field(
        None, description="Accepted and ignored: the agent samples as its mode needs."
    )
    top_p: float | None = Field(None, description="Accepted and ignored.")
    user: str | None = Field(None, description="Accepted and ignored: the API key says who.")
    tools: list[Any] | None = Field(
        None,
        description=f"Not supported: must be absent, null or empty ({TOOLS_REFUSED})",
        json_schema_extra={"maxItems": 0},
    )
    functions: list[Any] | None = Field(
        None, description="Not supported, as `tools`.", json_schema_extra={"maxItems": 0}
    )
    tool_choice: Literal["none", "auto"] | None = Field(
        None, description="Only `none` or `auto` (there are no tools to choose)."
    )
    function_call: Literal["none", "auto"] | None = Field(None, description="As `tool_choice`.")
    parallel_tool_calls: bool | None = Field(None, description="Accepted and ignored.")
    response_format: ResponseFormat | None = Field(None, description='Only `{"type": "text"}`.')
    logprobs: bool | None = Field(
        None,
        description="Only false: the answer is the agent's, not one sampled text.",
        json_schema_extra={"not": {"const": True}},
    )

    @field_validator("messages", mode="before")
    @classmethod
    def _no_tool_messages(cls, value: Any) -> Any:
        for index, message in enumerate(value if isinstance(value, list) else ()):
            if isinstance(message, dict) and message.get("role") in ("tool", "function"):
                raise ValueError(
                    f"the role {message['role']!r} (message {index}) is not supported: the "
                    "agent runs its own actions"
                )
        return value

    @field_validator("messages")
    @classmethod
    def _has_a_question(cls, value: list[Any]) -> list[Any]:
        if not any(isinstance(message, UserMessage) for message in value):
            raise ValueError("no user message: the last one is the question")
        return value

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError("must be 1: a completion is one agent run, with one answer")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("not supported: the answer is the agent's, not one sampled text")
        return value

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError(TOOLS_REFUSED)
        return value

    @property
    def question(self) -> str:
        """The last user message's text."""
        return self.messages[self._last_user].text

    @property
    def earlier_turns(self) -> list[Turn]:
        """The conversation before the question, as a thread's turns: each user message with
        the assistant messages after it (joined) as its answer, None when there are none.
        System messages and an assistant message before any user message (a greeting) are
        left out."""
        turns: list[Turn] = []
        for message in self.messages[: self._last_user]:
            if isinstance(message, UserMessage):
                turns.append(Turn(message.text, None))
            elif isinstance(message, AssistantMessage) and turns and message.text.strip():
                last = turns[-1]
                answer = message.text if last.answer is None else f"{last.answer}\n\n{message.text}"
                turns[-1] = Turn(last.question, answer)
        return turns

    @property
    def system_messages(self) -> int:
        return sum(isinstance(message, SystemMessage) for message in self.messages)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def _last_user(self) -> int:
        return max(i for i, m in enumerate(self.messages) if isinstance(m, UserMessage))


# -- responses ----------------------------------------------------------------------------------

FinishReason = Literal["stop", "length"]


class CompletionUsage(BaseModel):
    """The run's tokens, every LLM call of it included."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantReply(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str = Field(description="The agent's answer.")
    reasoning_content: str | None = Field(
        None, description="The run's steps: thoughts, actions and observations."
    )


class Choice(BaseModel):
    index: int = 0
    message: AssistantReply
    finish_reason: FinishReason = Field(
        description="`stop`: the agent finished; `length`: it reached its step limit."
    )
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str = Field(description="`chatcmpl-` and the run's id.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None = None
    run_id: str = Field(description="The stored run (`GET /runs/{run_id}`); also `X-Run-Id`.")


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    run_id: str

    def wire(self, *, with_usage: bool) -> dict[str, Any]:
        """As OpenAI sends it: a delta holds only what it carries; ``usage`` is on every chunk
        (null but on the last) when the client asked for it, on none otherwise."""
        data = self.model_dump(mode="json")
        for choice in data["choices"]:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        if not with_usage:
            del data["usage"]
        return data


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = OWNER


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str = Field(
        description="`invalid_request_error`, `authentication_error`, `permission_error`, "
        "`not_found_error`, `conflict_error`, `rate_limit_error`, `server_error`."
    )
    param: str | None = Field(None, description="The request field at fault, when one is.")
    code: str | None = Field(
        None,
        description="e.g. `invalid_api_key`, `model_not_found`, `rate_limit_exceeded`, "
        "`run_cancelled`, `timeout`, or the LLM backend's failure (`llm_unavailable`, ...).",
    )


class OpenAIProblem(Problem):
    """A problem document (as every error of this service) that is also OpenAI's error
    object: OpenAI's clients read ``error``."""

    error: OpenAIErrorBody
