"""The PAL prompt: a system message, few-shot exemplars as chat turns, the question last.

Exemplars live in data files (``agents/prompts/pal/<task>.txt``, shared instructions in
``system.txt``), written by us in the PAL paper's style: the question, then ``def solution():``
with the question as docstring, named variables and ``return result``. A family file holds
``#`` comment lines and ``Hint:`` lines (added to the system message) before its first ``Q:``
line, then exemplars: a ``Q: <question>`` line followed by the program.

The prefix (system message and exemplar turns) is built once per family and is byte-identical
for every question, so a local model's prompt cache evaluates it once: only the final user
turn (the question, after the thread's earlier turns when the run has memory) and later turns
differ. Never put anything request-specific before it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from agents.llm.base import ChatMessage
from agents.memory import Memory, shown_summary
from agents.untrusted import defang_template_tokens, untrusted_text

DEFAULT_TASK = "math"
TASKS: tuple[str, ...] = ("math", "date", "objects")
"""The prompt families, each a data file; the service validates ``task`` against these."""

# Where a completion has run on into the next exemplar; also sent as stop sequences.
STOP_SEQUENCES: tuple[str, ...] = ("\nQ: ", "\nQuestion:")

_PACKAGE = "agents"
_DIRECTORY = ("prompts", "pal")


@dataclass(frozen=True, slots=True)
class Exemplar:
    question: str
    program: str


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    hints: tuple[str, ...]
    exemplars: tuple[Exemplar, ...]


def _read(filename: str) -> str:
    path = resources.files(_PACKAGE).joinpath(*_DIRECTORY, filename)
    return path.read_text(encoding="utf-8").replace("\r\n", "\n")


def parse_family(name: str, text: str) -> Family:
    """Parse a family file (see the module docstring); raises ``ValueError`` when malformed."""
    hints: list[str] = []
    exemplars: list[Exemplar] = []
    question: str | None = None
    body: list[str] = []

    def close() -> None:
        if question is None:
            return
        program = "\n".join(body).strip("\n")
        if "def solution" not in program:
            raise ValueError(f"pal/{name}: exemplar {question!r} has no def solution()")
        exemplars.append(Exemplar(question, program + "\n"))

    for line in text.splitlines():
        if line.startswith("Q: "):
            close()
            question, body = line[3:].strip(), []
        elif question is not None:
            body.append(line.rstrip())
        elif line.startswith("Hint:"):
            hints.append(line[5:].strip())
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"pal/{name}: unexpected line before the first exemplar: {line!r}")
    close()
    if not exemplars:
        raise ValueError(f"pal/{name}: no exemplars")
    return Family(name, tuple(hints), tuple(exemplars))


@functools.cache
def load_family(task: str) -> Family:
    if task not in TASKS:
        raise ValueError(f"unknown PAL task {task!r}; expected one of: {', '.join(TASKS)}")
    return parse_family(task, _read(f"{task}.txt"))


def fence(program: str) -> str:
    return f"```python\n{program.rstrip()}\n```"


def reply_start(question: str) -> str | None:
    """How every exemplar's reply begins (the fence, ``def solution():`` and the docstring that
    restates the question), up to the question's last letter or digit: for a backend that
    continues a reply (``LLM.supports_prefill``), which then reads it at prefill speed rather
    than writing it token by token. On the embedded model that is a third of a short
    program's tokens, and most of a word problem's.

    It stops before the question's closing punctuation because the tokenizers of these
    models merge punctuation with the quotes and line break that follow it: cut there, the
    prompt's tokens are those of the whole program, and the model writes the rest as it
    would have. None when the question cannot stand verbatim in a one-line docstring (a
    backslash, triple quotes, a line break, a template token) or has no letter or digit."""
    text = question.strip()
    if "\\" in text or '"""' in text or "\n" in text or "\r" in text:
        return None
    if defang_template_tokens(text) != text:
        return None
    end = max((i for i, ch in enumerate(text) if ch.isalnum()), default=-1)
    if end < 0:
        return None
    return f'```python\ndef solution():\n    """{text[: end + 1]}'


@functools.cache
def prefix(task: str = DEFAULT_TASK) -> tuple[ChatMessage, ...]:
    """The system message and exemplar turns for ``task``: the same objects on every call."""
    family = load_family(task)
    system = _read("system.txt").strip()
    if family.hints:
        system += "\n" + "\n".join(family.hints)
    messages = [ChatMessage("system", system)]
    for exemplar in family.exemplars:
        messages.append(ChatMessage("user", question_turn(exemplar.question)))
        messages.append(ChatMessage("assistant", fence(exemplar.program)))
    return tuple(messages)


def question_turn(question: str) -> str:
    return f"Q: {question.strip()}"


EARLIER = "Earlier in this conversation (the question below may refer to it):"
# Before the passages ``retrieve`` found for a PAL run over document collections.
PASSAGES = "From the documents (take the numbers the program needs from here):"


def build_messages(
    question: str,
    task: str = DEFAULT_TASK,
    memory: Memory | None = None,
    context: str | None = None,
) -> list[ChatMessage]:
    """The conversation for one question: the cached prefix, the thread's earlier PAL turns
    as exchanges of the prefix's own form (``Q: …`` then the fenced program that answered
    it), then the question, after the other earlier turns and the summary
    (``earlier_context``) when there are any.

    A PAL follow-up is an edit of the earlier program: shown its program, the 0.5B model
    answered "and what if she bought seven?", "what if each bagel cost $2?" and "and if she
    had $30 instead?" right (2, 13, 15); shown only the earlier question and its answer, it
    rewrote the earlier program every time (8, 8, 8)."""
    exchanges: list[ChatMessage] = []
    rest = memory
    if memory:
        with_program = [t for t in memory.turns if t.program]
        for earlier in with_program:
            exchanges.append(ChatMessage("user", question_turn(untrusted_text(earlier.question))))
            exchanges.append(
                ChatMessage("assistant", fence(defang_template_tokens(earlier.program or "")))
            )
        rest = Memory(memory.summary, tuple(t for t in memory.turns if not t.program))
    turn = question_turn(question)
    if context:
        turn = f"{PASSAGES}\n{untrusted_text(context.strip())}\n\n{turn}"
    if rest:
        turn = f"{earlier_context(rest)}\n\n{turn}"
    return [*prefix(task), *exchanges, ChatMessage("user", turn)]


def earlier_context(memory: Memory) -> str:
    """The thread's summary and earlier turns as a paragraph that opens the question's turn.

    They go in the question's own turn, after the cached prefix: a small model reads mostly
    the last turn (see ``repair_turns``), and a follow-up such as "and what if she bought
    seven?" needs the earlier question's numbers right there. As chat turns of their own
    they would need an assistant reply, but an earlier turn keeps only its answer, not its
    program, and a prose answer among the fenced exemplars teaches the model to answer in
    prose. Each turn is a ``Question:`` / ``Answer:`` pair, never ``Q:``: a ``Q:`` line is an
    exemplar's question, and ``"\nQ: "`` is a stop sequence. The text is shown as untrusted
    (``agents.untrusted``): an answer may quote a tool's output."""
    lines: list[str] = []
    if memory.summary:
        lines += [shown_summary(memory.summary), ""]
    if memory.turns:
        lines.append(EARLIER)
    for turn in memory.turns:
        lines.append(f"Question: {untrusted_text(turn.question.strip())}")
        lines.append(f"Answer: {untrusted_text((turn.answer or '').strip())}")
    return "\n".join(lines).strip()


def repair_turns(question: str, attempt: str, failure: str) -> list[ChatMessage]:
    """The follow-up after a failed attempt (the fenced program, or the completion that held
    none) as the model's turn, then what went wrong.

    The user turn restates ``question`` verbatim: a small model reads mostly the last turn,
    and without the question there it wrote the repair instruction into the docstring and
    took numbers from the exemplars instead. What the program printed or raised is the
    program's text, not the model's: it is shown as untrusted (``agents.untrusted``), and the
    model's own attempt with its template tokens broken."""
    return [
        ChatMessage("assistant", defang_template_tokens(attempt.strip()) or "(empty reply)"),
        ChatMessage(
            "user",
            f"The question was: {question.strip()}\n"
            "Your program failed with:\n"
            f"{untrusted_text(failure.strip())}\n"
            "Write a corrected program for that question: one ```python block defining "
            "solution(), with the question as its docstring, that returns the answer.",
        ),
    ]


def verbalize_turns(program: str, answer: str) -> list[ChatMessage]:
    """The follow-up that asks for the final answer as a sentence, given the computed one."""
    return [
        ChatMessage("assistant", defang_template_tokens(fence(program))),
        ChatMessage(
            "user",
            f"Running the program gave: {untrusted_text(answer)}\n"
            "This result is correct. State the final answer to the question in one short "
            "sentence that contains this exact result. Write only the sentence.",
        ),
    ]
