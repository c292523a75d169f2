"""Evaluation, not a test: accuracy of direct answering, ReAct, PAL and PAL with voting.

    .venv/bin/python bench/pal_eval.py                       # our small mixed dataset
    .venv/bin/python bench/pal_eval.py --data gsmhardv2.jsonl --limit 50
    .venv/bin/python bench/pal_eval.py --base-url http://127.0.0.1:11434/v1 --model qwen2.5:7b

The dataset is JSONL with ``{"question", "target"}`` per line (``input`` is accepted for
``question``, as in the PAL repo's datasets; an optional ``task`` picks the PAL prompt family).
The LLM is ``--base-url/--model/--api-key`` (or ``LLM_BASE_URL``/``LLM_MODEL``/``LLM_API_KEY``),
else the embedded local model when ``agents.llm.local`` and its model are available.

Scoring: a numeric target is matched against the answer's exact value (PAL) or the last number
in the answer text (direct, ReAct), within ``abs 1e-3`` or ``rel 1e-6``; a text target must
appear in the answer, case ignored. Questions run one at a time (a local model serves one
generation at a time anyway), so times are per question, not throughput. ``peak MB`` is this
process's peak resident memory when the row ended (``ru_maxrss``: it only grows, so a row
shows the largest of itself and the rows before it; the sandbox's processes are not counted).
``--dump FILE`` writes one JSON line per question and method (answer, correctness, votes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from any directory
    sys.path.insert(0, str(ROOT))

from agents.errors import LLMError  # noqa: E402
from agents.events import FinalEvent, StepEvent  # noqa: E402
from agents.factory import AgentFactory, RunSpec  # noqa: E402
from agents.llm.base import LLM, ChatMessage, Usage  # noqa: E402
from agents.pal import TASKS, PalOptions, run_pal  # noqa: E402
from agents.pal.vote import as_number  # noqa: E402
from agents.policy import RunPolicy  # noqa: E402
from service import components  # noqa: E402
from service.settings import Settings  # noqa: E402
from tools.python_tool import PythonTool  # noqa: E402
from tools.registry import ToolRegistry  # noqa: E402
from tools.sandbox import Sandbox, SandboxConfig  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "pal_eval_small.jsonl"
DIRECT_SYSTEM = (
    "Answer the question with only the final answer: a number (no units) or a short phrase. "
    "No explanation."
)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


@dataclass(frozen=True, slots=True)
class Item:
    question: str
    target: Any
    task: str


@dataclass(slots=True)
class Row:
    name: str
    correct: int = 0
    errors: int = 0
    seconds: float = 0.0
    tokens: int = 0
    calls: int = 0
    done: int = 0
    peak_mb: float = 0.0
    misses: list[str] = field(default_factory=list)


def load(path: Path, limit: int | None) -> list[Item]:
    if not path.is_file():
        raise SystemExit(f"no such dataset: {path}")
    items: list[Item] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        question = raw.get("question") or raw.get("input")
        if not isinstance(question, str) or "target" not in raw:
            raise SystemExit(f"{path}: every line needs 'question' (or 'input') and 'target'")
        task = raw.get("task") if raw.get("task") in TASKS else "math"
        items.append(Item(question, raw["target"], task))
        if limit is not None and len(items) >= limit:
            break
    return items


def is_correct(answer: str | None, target: Any, value: Any = None) -> bool:
    expected = as_number(target)
    if expected is not None:
        if value is not None and as_number(value) is not None:
            got = as_number(value)
        else:
            numbers = [m.group() for m in _NUMBER.finditer(answer or "")]
            got = as_number(numbers[-1].rstrip(".,")) if numbers else None
        if got is None:
            return False
        try:
            return abs(got - expected) < 1e-3 or math.isclose(got, expected, rel_tol=1e-6)
        except OverflowError:
            return got == expected
    text = " ".join(str(target).split()).casefold()
    shown = " ".join(str(value if value is not None else answer or "").split()).casefold()
    return bool(text) and (text == shown or text in " ".join((answer or "").split()).casefold())


# -- the LLM --------------------------------------------------------------------------------


def build_llm(args: argparse.Namespace) -> LLM:
    """The LLM the service would use (LLM_* and LOCAL_* variables), with the flags on top."""
    flags = {
        "llm_base_url": args.base_url,
        "llm_api_key": args.api_key,
        "llm_model": args.model,
    }
    overrides = {name: value for name, value in flags.items() if value is not None}
    return components.build_llm(Settings(llm_timeout_s=args.call_timeout, **overrides))


# -- the four ways of answering -------------------------------------------------------------

Answerer = Callable[[Item], AsyncIterator[StepEvent]]


async def direct(llm: LLM, item: Item) -> FinalEvent:
    messages = [ChatMessage("system", DIRECT_SYSTEM), ChatMessage("user", item.question)]
    completion = await llm.complete(messages, temperature=0.0, max_tokens=48)
    lines = [line for line in completion.text.strip().splitlines() if line.strip()]
    return FinalEvent("finished", lines[0] if lines else "", completion.usage, 1)


async def last_event(events: AsyncIterator[StepEvent]) -> FinalEvent:
    final: FinalEvent | None = None
    async for event in events:
        if isinstance(event, FinalEvent):
            final = event
    assert final is not None
    return final


def react_runner(llm: LLM, sandbox: Sandbox) -> Callable[[Item], AsyncIterator[StepEvent]]:
    """The service's ReAct loop with the python action, constrained like the service does."""
    factory = AgentFactory(llm, sandbox, ToolRegistry([PythonTool(sandbox)]))
    spec = RunSpec(mode="react", policy=RunPolicy(allowed=("python", "finish"), max_steps=6))

    def run(item: Item) -> AsyncIterator[StepEvent]:
        return factory.run(item.question, spec)

    return run


async def evaluate(args: argparse.Namespace) -> int:
    items = load(Path(args.data), args.limit)
    llm = build_llm(args)
    print(f"dataset: {args.data} ({len(items)} questions)", flush=True)
    try:
        await llm.check()
    except LLMError as exc:
        print(f"the LLM is not usable: {exc}", file=sys.stderr)
        return 2
    print(f"model: {llm.model or '(server default)'}", flush=True)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows: list[Row] = []
    dump = Path(args.dump) if args.dump else None
    if dump is not None:
        dump.write_text("", encoding="utf-8")
    async with Sandbox(SandboxConfig(workers=2)) as sandbox:
        for mode in modes:
            row = Row(_label(mode, args.samples))
            rows.append(row)
            react = react_runner(llm, sandbox) if mode == "react" else None
            for item in items:
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(args.timeout):
                        final = await _answer(mode, item, llm, sandbox, react, args)
                except (LLMError, TimeoutError) as exc:
                    row.errors += 1
                    row.misses.append(f"{item.question[:60]}: {type(exc).__name__}: {exc}")
                    final = None
                seconds = time.perf_counter() - started
                row.seconds += seconds
                row.done += 1
                correct = False
                if final is not None:
                    usage: Usage = final.usage
                    row.tokens += usage.prompt_tokens + usage.completion_tokens
                    row.calls += final.llm_calls
                    value = final.details.get("value") if final.details else None
                    correct = is_correct(final.answer, item.target, value)
                    if correct:
                        row.correct += 1
                    else:
                        row.misses.append(
                            f"{item.question[:60]}: got {final.answer!r} want {item.target!r}"
                        )
                if dump is not None:
                    _append(dump, _dump_line(row.name, item, final, correct, seconds))
                if args.verbose:
                    print(
                        f"  [{row.name}] {row.done}/{len(items)} correct {row.correct}", flush=True
                    )
            row.peak_mb = peak_rss_mb()
            print(_line(row, len(items)), flush=True)
    await llm.aclose()
    print()
    print(_table(rows, len(items)))
    if args.show_misses:
        for row in rows:
            for miss in row.misses:
                print(f"{row.name}: {miss}")
    return 0


async def _answer(
    mode: str,
    item: Item,
    llm: LLM,
    sandbox: Sandbox,
    react: Callable[[Item], AsyncIterator[StepEvent]] | None,
    args: argparse.Namespace,
) -> FinalEvent:
    if mode == "direct":
        return await direct(llm, item)
    if mode == "react":
        assert react is not None
        return await last_event(react(item))
    samples = args.samples if mode == "pal-k" else 1
    options = PalOptions(task=item.task, samples=samples, temperature=args.temperature)
    return await last_event(run_pal(item.question, llm=llm, sandbox=sandbox, options=options))


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports kilobytes)."""
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / 1024 if sys.platform != "darwin" else kilobytes / 1024 / 1024


def _dump_line(
    name: str, item: Item, final: FinalEvent | None, correct: bool, seconds: float
) -> str:
    details = (final.details or {}) if final is not None else {}
    record = {
        "method": name,
        "question": item.question,
        "target": item.target,
        "answer": final.answer if final is not None else None,
        "correct": correct,
        "seconds": round(seconds, 2),
        "calls": final.llm_calls if final is not None else 0,
        "error": final.error if final is not None else "no answer in time",
    }
    for key in ("votes", "agreement", "failed", "repairs", "drawn"):
        if key in details:
            record[key] = details[key]
    return json.dumps(record, default=str)


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")


def _label(mode: str, samples: int) -> str:
    return {"direct": "direct", "react": "ReAct", "pal": "PAL", "pal-k": f"PAL k={samples}"}.get(
        mode, mode
    )


def _line(row: Row, total: int) -> str:
    return f"{row.name}: {row.correct}/{total}"


def _table(rows: Sequence[Row], total: int) -> str:
    header = (
        f"{'method':<10} {'accuracy':>9} {'correct':>8} {'errors':>7} {'s/q':>7} "
        f"{'tokens/q':>9} {'calls/q':>8} {'peak MB':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        n = max(row.done, 1)
        lines.append(
            f"{row.name:<10} {row.correct / n:>9.1%} {row.correct:>5}/{row.done:<2} "
            f"{row.errors:>7} {row.seconds / n:>7.2f} {row.tokens / n:>9.0f} {row.calls / n:>8.2f} "
            f"{row.peak_mb:>8.0f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="JSONL of {question, target}")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible /v1 endpoint")
    parser.add_argument("--model", default=None)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--samples", type=int, default=5, help="k for the voting row")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling for k > 1")
    parser.add_argument(
        "--modes", default="direct,react,pal,pal-k", help="comma-separated: direct,react,pal,pal-k"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per question")
    parser.add_argument("--call-timeout", type=float, default=120.0, help="seconds per LLM call")
    parser.add_argument("--verbose", action="store_true", help="progress per question")
    parser.add_argument("--show-misses", action="store_true", help="list the wrong answers")
    parser.add_argument("--dump", default=None, help="write each outcome as a JSON line here")
    return asyncio.run(evaluate(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
