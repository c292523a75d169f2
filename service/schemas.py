"""Request and response bodies of the HTTP API (CONTRACT.md, "POST /ask")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Mode = Literal["react", "pal"]
Status = Literal["finished", "max_steps", "timeout", "error"]
Task = Literal["math", "date", "objects"]
ActionName = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
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
        max_length=100_000,
        description="The question. Bounded by the server's MAX_QUESTION_CHARS.",
    )
    mode: Mode = Field("react", description="`react`: reason and act; `pal`: one program.")
    actions: list[ActionName] | None = Field(
        None,
        max_length=32,
        description="Narrows the server's allow-list for this run; never widens it (403).",
    )
    max_steps: int | None = Field(None, ge=1, le=100, description="Capped by the server.")
    timeout_s: float | None = Field(
        None, gt=0, le=3600, description="Wall-clock deadline, capped by the server's."
    )
    stream: bool = Field(False, description="Stream steps as server-sent events.")
    samples: int = Field(
        1, ge=1, le=64, description="PAL: programs to sample and vote over (self-consistency)."
    )
    verbalize: bool = Field(False, description="PAL: answer with a sentence around the result.")
    task: Task = Field("math", description="PAL: prompt family (`math`, `date`, `objects`).")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value.strip()


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


class StoredRun(AskResponse):
    question: str
    created_at: str


class ActionInfo(BaseModel):
    name: str
    input: str
    description: str


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    run_id: str | None = None
