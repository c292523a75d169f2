"""Sandbox latency and throughput: a run in a fresh confined process versus a fresh interpreter.

Runs the PAL program ``pal-math-olivia-bagels`` from ``tests/corpora/sandbox_legit.json`` (an
embedded copy of that 9-line program from the PAL paper when the file is absent) with every
available layer on, and prints:

* ``fresh python -I -c``: a new interpreter per run, the cost a per-run ``exec`` would pay;
* ``warm``: one run at a time with a pause between runs (an agent's pattern), so a confined,
  warmed child is waiting when the program arrives; target: p50 <= 1/20 of fresh;
* ``back-to-back``: one run at a time with no pause, so each run also pays for preparing the
  next child on the other core;
* ``saturated``: many runs at once; runs/s (target: >= 1,000 on 2 cores) and the CPU one run
  costs, split between the service, the templates and the runs' own processes;
* ``floor``: the CPU of a fork and an exit of a bare interpreter that runs nothing, the least
  any design with a fresh process per run pays on this machine (page tables copied and torn
  down, first writes faulted), whatever the sandbox does.

Usage: ``python bench/sandbox_latency.py [--runs N] [--workers W]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
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
PAUSE_S = 0.02


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


FORK_FLOOR = """
import os, resource
def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
before = cpu()
for _ in range({runs}):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print((cpu() - before) / {runs} * 1000)
"""


def fork_floor_ms(runs: int = 300) -> float:
    """CPU ms of one fork + exit of a bare interpreter (parent and child together)."""
    script = FORK_FLOOR.format(runs=runs)
    command = [sys.executable, "-I", "-S", "-c", script]
    out = subprocess.run(command, capture_output=True, check=True)
    return float(out.stdout)


def _cpu_of_tree(roots: set[int]) -> float:
    """CPU seconds used by ``roots`` and every process below them, children reaped included."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, grew = set(roots), True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        grew, found = bool(below), found | below
    total = 0.0
    for pid in found:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


async def one_at_a_time(sandbox: Sandbox, code: str, runs: int, pause_s: float) -> list[float]:
    samples = []
    for _ in range(runs):
        if pause_s:
            await asyncio.sleep(pause_s)
        started = time.perf_counter()
        result = await sandbox.run(code)
        samples.append((time.perf_counter() - started) * 1000)
        if result.value != 8:
            raise SystemExit(f"unexpected result: {result}")
    return samples


async def saturated(sandbox: Sandbox, code: str, runs: int) -> tuple[float, float, float]:
    """runs/s, service CPU ms per run, sandbox processes' CPU ms per run."""
    keepers = {template.process.pid for template in sandbox._templates}
    before_sandbox = _cpu_of_tree(keepers)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    results = await asyncio.gather(*(sandbox.run(code) for _ in range(runs)))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    sandbox_cpu = _cpu_of_tree(keepers) - before_sandbox
    if any(r.value != 8 for r in results):
        raise SystemExit("unexpected result under load")
    service_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return runs / elapsed, service_cpu / runs * 1000, sandbox_cpu / runs * 1000


async def measure(
    code: str, runs: int, workers: int
) -> tuple[list[float], list[float], tuple[float, float, float], dict[str, bool]]:
    config = SandboxConfig(workers=workers, queue_size=100_000)
    async with Sandbox(config) as sandbox:
        await one_at_a_time(sandbox, code, 20, PAUSE_S)
        warm = await one_at_a_time(sandbox, code, runs, PAUSE_S)
        back_to_back = await one_at_a_time(sandbox, code, runs, 0)
        load = await saturated(sandbox, code, max(runs, 400))
        return warm, back_to_back, load, sandbox.layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="runs per measurement")
    parser.add_argument("--fresh-runs", type=int, default=40, help="fresh interpreter runs")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    code, source = load_program()
    fresh = fresh_subprocess(code, args.fresh_runs)
    warm, back_to_back, (rate, service_ms, sandbox_ms), layers = asyncio.run(
        measure(code, args.runs, args.workers)
    )
    floor_ms = fork_floor_ms()
    active = ", ".join(name for name, on in layers.items() if on) or "none"
    print(f"program: {source}; layers: {active}; workers: {args.workers}")
    print(f"{'path':<44}{'runs':>7}{'p50 ms':>10}{'p99 ms':>10}")
    rows = (
        ("fresh python -I -c per run", fresh),
        (f"sandbox, warm (a {PAUSE_S * 1000:g} ms pause between runs)", warm),
        ("sandbox, back-to-back (no pause)", back_to_back),
    )
    for name, samples in rows:
        print(
            f"{name:<44}{len(samples):>7}{statistics.median(samples):>10.3f}"
            f"{percentile(samples, 0.99):>10.3f}"
        )
    fresh_p50 = statistics.median(fresh)
    for name, samples in rows[1:]:
        ratio = fresh_p50 / statistics.median(samples)
        verdict = "met" if ratio >= 20 else "NOT met"
        print(f"{name}: p50 is 1/{ratio:.1f} of fresh (target 1/20: {verdict})")
    verdict = "met" if rate >= 1000 else "NOT met"
    print(f"saturated: {rate:,.0f} runs/s with {args.workers} templates (target 1,000: {verdict})")
    print(
        f"CPU per run: service {service_ms:.2f} ms, templates and runs' processes "
        f"{sandbox_ms:.2f} ms ({os.cpu_count()} cores)"
    )
    cores = os.cpu_count() or 1
    print(
        f"floor: fork + exit of a bare interpreter costs {floor_ms:.2f} ms CPU here, at most "
        f"{cores * 1000 / floor_ms:,.0f} empty processes/s on {cores} cores"
    )


if __name__ == "__main__":
    main()
