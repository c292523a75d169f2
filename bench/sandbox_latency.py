"""Sandbox latency: a warm pooled run versus a fresh ``python -I -c`` per run.

Runs the PAL program ``pal-math-olivia-bagels`` from ``tests/corpora/sandbox_legit.json``
(an embedded copy of that 9-line program from the PAL paper when the corpora are absent)
through the sandbox with every available layer on, and through a fresh interpreter per run;
prints p50/p99 of each, their ratio against the target (warm p50 <= 1/20 of fresh p50), and the
throughput with the pool saturated. Usage: ``python bench/sandbox_latency.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.sandbox import Sandbox, SandboxConfig

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpora" / "sandbox_legit.json"
PROGRAM_ID = "pal-math-olivia-bagels"
EMBEDDED = '''def solution():
    """Olivia has $23. She bought five bagels for $3 each. How much money does she have left?"""
    money_initial = 23
    bagels = 5
    bagel_cost = 3
    money_spent = bagels * bagel_cost
    money_left = money_initial - money_spent
    result = money_left
    return result
'''


def load_program() -> tuple[str, str]:
    if CORPUS.is_file():
        for case in json.loads(CORPUS.read_text(encoding="utf-8")):
            if case.get("id") == PROGRAM_ID:
                return case["code"], f"{CORPUS.name}#{PROGRAM_ID}"
    print(f"note: {CORPUS} not found; using the embedded copy of {PROGRAM_ID}")
    return EMBEDDED, f"embedded {PROGRAM_ID}"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fresh_subprocess(code: str, runs: int) -> list[float]:
    script = code + "\nprint(solution())\n"
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, check=True)
        samples.append((time.perf_counter() - started) * 1000)
        assert out.stdout.strip() == b"8"
    return samples


async def pooled(code: str, runs: int, workers: int) -> tuple[list[float], float, dict[str, bool]]:
    config = SandboxConfig(workers=workers, queue_size=10_000)
    async with Sandbox(config) as sandbox:
        for _ in range(50):  # every template has forked its first child
            await sandbox.run(code)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            result = await sandbox.run(code)
            samples.append((time.perf_counter() - started) * 1000)
            if result.value != 8:
                raise SystemExit(f"unexpected result: {result}")
        total = runs * 2
        started = time.perf_counter()
        results = await asyncio.gather(*(sandbox.run(code) for _ in range(total)))
        throughput = total / (time.perf_counter() - started)
        if any(r.value != 8 for r in results):
            raise SystemExit("unexpected result under load")
        return samples, throughput, sandbox.layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="warm sandbox runs")
    parser.add_argument("--fresh-runs", type=int, default=40, help="fresh interpreter runs")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    code, source = load_program()
    fresh = fresh_subprocess(code, args.fresh_runs)
    warm, throughput, layers = asyncio.run(pooled(code, args.runs, args.workers))
    fresh_p50, warm_p50 = statistics.median(fresh), statistics.median(warm)
    active = ", ".join(name for name, on in layers.items() if on) or "none"
    print(f"program: {source}; layers: {active}; workers: {args.workers}")
    print(f"{'path':<36}{'runs':>7}{'p50 ms':>10}{'p99 ms':>10}")
    print(
        f"{'fresh python -I -c per run':<36}{len(fresh):>7}{fresh_p50:>10.3f}"
        f"{percentile(fresh, 0.99):>10.3f}"
    )
    print(
        f"{'sandbox, warm worker, all layers':<36}{len(warm):>7}{warm_p50:>10.3f}"
        f"{percentile(warm, 0.99):>10.3f}"
    )
    ratio = fresh_p50 / warm_p50
    verdict = "met" if ratio >= 20 else "NOT met"
    print(f"warm p50 is 1/{ratio:.0f} of fresh p50 (target 1/20: {verdict})")
    print(f"saturated pool: {throughput:,.0f} runs/s ({args.workers} workers)")


if __name__ == "__main__":
    main()
