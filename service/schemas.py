"""Request and response bodies of the HTTP API (CONTRACT.md, "POST /ask")."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    field_validator,
    model_validator,
)

Mode = Literal["react", "pal"]
Status = Literal["finished", "max_steps", "timeout", "error", "cancelled", "interrupted"]
# A stored run is "running" from its start until its end is stored (or for good, when that
# failed: then the /ask response said ``stored: false``).
StoredStatus = Literal[
    "queued", "running", "finished", "max_steps", "timeout", "error", "cancelled", "interrupted"
]
Task = Literal["math", "date", "objects"]
# What a question may hold of the control characters (C0, C1, DEL) and lone surrogates: a NUL
# breaks Postgres, and the rest only hides text from the people who read the runs.
# (Unicode categories Cc and Cs, but tab, LF and CR.)
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{_CONTROLS}\\ud800-\\udfff]")
# The blanks around a question (ECMA-262's whitespace that is not a control character): a
# question of nothing else is blank, in the published pattern as in the validator (pass EY:
# "\r" matched the pattern and was refused).
_BLANKS = r"\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SOMETHING = re.compile(f"[^{_BLANKS}]")
# ECMA-262, for the schema: blanks, one character that is neither a blank nor a control, then
# anything but controls (linear: the first run can only end where the one character is).
_QUESTION_PATTERN = f"^[{_BLANKS}]*[^{_CONTROLS}{_BLANKS}][^{_CONTROLS}]*$"
# Published with a pattern that says what the stripping implies: " " is no name (pass EY).
ActionName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True, pattern=r"\S")
]
# A collection's name: what a URL path and a prompt can hold without escaping.
COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CollectionName = Annotated[str, StringConstraints(pattern=COLLECTION_NAME_PATTERN)]
MemoryStrategy = Literal["buffer", "window", "tokens", "summary"]
_ID_PATTERN = r"^[0-9a-f]{1,40}$"
SOURCE_CHARS = 300  # a document's source name, as sent (JSON or a multipart field)


def _integral(value: object) -> object:
    """JSON Schema's ``integer`` includes ``5.0``, which strict validation alone refuses."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# After the bounds, so that the published schema keeps them as minimum and maximum.
Integral = BeforeValidator(_integral)


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """Text kept as sent: NUL (which Postgres refuses) and lone surrogates (which no UTF-8
    encoder takes) are refused, never stored as U+FFFD behind the client's back (a thread's
    label with a NUL came back altered: red-team pass EY)."""
    if found := _UNSTORABLE.search(value):
        raise ValueError(
            f"holds U+{ord(found.group()):04X} at {found.start()}, which cannot be stored"
        )
    return value


# A client's own text that is stored and shown back as it was sent.
StorableStr = Annotated[str, AfterValidator(storable_text)]


def _not_a_bool(value: object) -> object:
    """``true`` is not a score, though Python counts it equal to 1."""
    if isinstance(value, bool):
        raise ValueError("a score is -1 or 1, not a boolean")
    return value


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # The JSON types the schema publishes, not coercions: "stream": 0 or "max_steps": "5"
        # is a 422, as the schema says (found by the schema fuzzing, test_schema_fuzz).
        strict=True,
        json_schema_extra={
            "examples": [
                {"question": "What is 1234 * 5678?", "mode": "pal"},
                {
                    "question": "How many days are there between 1969-07-20 and 1989-11-09?",
                    "mode": "react",
                    "actions": ["python"],
                    "max_steps": 6,
                },
                {"question": "A farmer has 17 sheep ...", "mode": "pal", "samples": 5},
            ]
        },
    )

    question: str = Field(
        min_length=1,
        # No max_length here: the server's MAX_QUESTION_CHARS is the one limit, checked with
        # one message and published as this field's maxLength (service.app.openapi_schema).
        description="The question, at most the server's MAX_QUESTION_CHARS; no control "
        "characters but tab and line breaks.",
        # Published for clients (and the schema fuzzing); the validator below enforces it.
        json_schema_extra={"pattern": _QUESTION_PATTERN},
    )
    mode: Mode = Field("react", description="`react`: reason and act; `pal`: one program.")
    collections: list[CollectionName] | None = Field(
        None,
        max_length=16,
        description="Your document collections the `retrieve` action reads in this run "
        "(react mode); leave the field out for the server's RETRIEVE_COLLECTIONS, `[]` for none.",
    )
    actions: list[ActionName] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="Narrows the server's allow-list for this run; never widens it (403). "
        "Names are case-insensitive; leave the field out for every allowed action.",
    )
    max_steps: Annotated[int, Field(ge=1, le=100), Integral] | None = Field(
        None, description="Capped by the server."
    )
    timeout_s: float | None = Field(
        None, gt=0, le=3600, description="Wall-clock deadline, capped by the server's."
    )
    stream: bool = Field(False, description="Stream steps as server-sent events.")
    samples: Annotated[int, Field(ge=1, le=64), Integral] = Field(
        1, description="PAL: programs to sample and vote over (self-consistency)."
    )
    verbalize: bool = Field(False, description="PAL: answer with a sentence around the result.")
    task: Task = Field("math", description="PAL: prompt family (`math`, `date`, `objects`).")
    thread_id: Annotated[str, StringConstraints(pattern=_ID_PATTERN)] | None = Field(
        None, description="Continue this thread: the model sees its earlier turns (`memory`)."
    )
    memory: MemoryStrategy | None = Field(
        None,
        description="How much of the thread the model sees: `buffer` (every turn), `window` "
        "(the last MEMORY_WINDOW), `tokens` (the newest that fit MEMORY_MAX_TOKENS), `summary` "
        "(a running summary of older turns plus the last MEMORY_WINDOW). Default: the "
        "server's MEMORY_STRATEGY.",
    )
    background: bool = Field(
        False,
        description="Run on after the client goes away (as `POST /runs`); without it, a "
        "client that disconnects cancels the run.",
    )

    @field_validator("question")
    @classmethod
    def _clean(cls, value: str) -> str:
        if not _SOMETHING.search(value):
            raise ValueError("question must not be blank")
        if found := _CONTROL.search(value):
            raise ValueError(
                f"question contains the control character U+{ord(found.group()):04X} at "
                f"{found.start()}; only tabs and line breaks are allowed"
            )
        return value.strip()

    @model_validator(mode="wrap")
    @classmethod
    def _count_sent(cls, data: Any, handler: ModelWrapValidatorHandler[AskRequest]) -> AskRequest:
        """The question's length as sent, which ``MAX_QUESTION_CHARS`` (published as its
        ``maxLength``) limits: the blanks around it count (pass FD's fuzzing: a question
        past the limit by its leading blanks was taken, stripped)."""
        made = handler(data)
        if isinstance(data, dict) and isinstance(data.get("question"), str):
            made._sent_chars = len(data["question"])
        return made

    _sent_chars: int = PrivateAttr(0)

    @property
    def sent_chars(self) -> int:
        """The question's length as it came, before its blanks were stripped."""
        return self._sent_chars or len(self.question)


class Step(BaseModel):
    thought: str | None = None
    action: str | None = None
    action_input: str | None = None
    observation: str | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0


class AskResponse(BaseModel):
    run_id: str
    status: Status
    answer: str | None
    steps: list[Step]
    usage: Usage
    duration_ms: float
    mode: Mode = "react"
    error: str | None = Field(None, description="Why the run ended early, when it did.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Mode-specific: in pal mode the exact value, the votes and the agreement.",
    )
    stored: bool = Field(
        True,
        description="False when the run's outcome could not be stored (the run store failed): "
        "GET /runs/{run_id} will not show how it ended.",
    )
    store_error: str | None = Field(None, description="Why the run could not be stored.")


class StoredRun(AskResponse):
    status: StoredStatus  # type: ignore[assignment]  # wider: a run in progress is stored too
    question: str
    created_at: str
    thread_id: str | None = None
    feedback: Feedback | None = Field(None, description="Your feedback on this run, if any.")


class RunList(BaseModel):
    runs: list[StoredRun]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class RunAccepted(BaseModel):
    run_id: str
    status: StoredStatus


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    score: Annotated[Literal[-1, 1], BeforeValidator(_not_a_bool), Integral] | None = Field(
        None, description="-1: a bad answer; 1: a good one."
    )
    rating: Annotated[int, Field(ge=1, le=5), Integral] | None = None
    comment: StorableStr | None = Field(None, max_length=4000)
    correction: StorableStr | None = Field(
        None, min_length=1, max_length=4000, description="The right answer, when it was wrong."
    )


class Feedback(BaseModel):
    score: int | None = None
    rating: int | None = None
    comment: str | None = None
    correction: str | None = None
    created_at: str
    updated_at: str


class ThreadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    metadata: dict[
        Annotated[StorableStr, StringConstraints(min_length=1, max_length=64)],
        Annotated[StorableStr, StringConstraints(max_length=500)],
    ] = Field(default_factory=dict, max_length=16, description="Your own labels (strings).")


class Thread(BaseModel):
    thread_id: str
    created_at: str
    metadata: dict[str, str]


class Turn(BaseModel):
    run_id: str
    question: str
    answer: str | None
    status: StoredStatus
    created_at: str


class ThreadWithTurns(Thread):
    turns: list[Turn] = Field(description="Its runs, oldest first.")


class ThreadList(BaseModel):
    threads: list[Thread]
    next_cursor: str | None = None


class ActionInfo(BaseModel):
    name: str
    input: str
    description: str
    available: bool = Field(
        True, description="False while the action's service is down: runs leave it out."
    )
    unavailable_reason: str | None = Field(None, description="Why, when it is not available.")
    allowed: bool = Field(
        True,
        description="False for an MCP server's tool that ALLOWED_ACTIONS does not list: shown, "
        "but no run may use it.",
    )


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    run_id: str | None = Field(None, description="The stored run, when one had started (502, 504).")
    run_status: Status | None = Field(None, description="That run's status.")
    reason: str | None = Field(
        None,
        description="Why the LLM backend failed, as a stable code (502): `llm_unavailable`, "
        "`llm_timeout`, `llm_rate_limited`, `llm_bad_response`, `llm_misconfigured`; the "
        "backend's own answer is in the service's log only.",
    )
    store_error: str | None = Field(
        None, description="Set when that run could not be stored: why (502, 504)."
    )


StoredRun.model_rebuild()  # it names Feedback, defined after it


class CollectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: CollectionName = Field(description="Letters, digits, `.`, `_`, `-`; at most 64.")
    description: StorableStr = Field("", max_length=2000, description="What the collection holds.")


class Collection(BaseModel):
    collection_id: str
    name: str
    description: str
    created_at: str
    documents: int = Field(description="Documents in the collection.")
    chunks: int = Field(description="Passages indexed, over all its documents.")
    embedded: int = Field(
        description="Passages with a vector of the configured embeddings model "
        "(EMBEDDINGS_BASE_URL; 0 without one): equal to chunks once all are embedded."
    )


class CollectionList(BaseModel):
    collections: list[Collection]


class DocumentText(BaseModel):
    """A document sent as JSON text (a file goes as ``multipart/form-data`` instead)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, description="The document: plain text, Markdown or HTML.")
    source: StorableStr = Field(
        min_length=1,
        max_length=SOURCE_CHARS,
        description="Its name, shown with each passage cited.",
    )
    media_type: Literal["text/plain", "text/markdown", "text/html"] | None = Field(
        None, description="A hint; the kind is told by the content (HTML) first."
    )


class Document(BaseModel):
    document_id: str
    collection: str
    source: str
    media_type: str
    bytes: int
    pages: int | None = Field(description="A PDF's pages; null for other kinds.")
    chunks: int = Field(description="Passages the document was cut into.")
    embedded: int = Field(
        description="Its passages that have a vector of the configured embeddings model "
        "(EMBEDDINGS_BASE_URL; 0 without one). They are embedded in the background after "
        "ingestion; until then they rank by BM25 alone."
    )
    sha256: str
    created_at: str


class DocumentList(BaseModel):
    documents: list[Document]
