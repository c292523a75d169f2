"""Where a sandbox run's CPU goes in its fresh process: page faults and time per phase.

A run's child is forked from the template, so every page it writes is copied first (a
copy-on-write fault: ~3-5 us each on this VM), and the first run in a process also finds its
caches cold. This forks children of a template-like process (the same ``Runner``, warm-up and
frozen heap as ``tools.sandbox.template``, without the confinement layers, whose cost
``bench/sandbox_latency.py`` includes) and measures, inside each child, the minor faults and
the time of each phase of one run of the latency bench's program:

* ``parse``: ``ast.parse`` of the program;
* ``transform``: the policy's AST rewrite (``compiler.SandboxTransformer``);
* ``compile``: ``compile()`` of the rewritten tree;
* ``set up``: the run's module state and globals;
* ``run``: the program itself, and its answer;
* ``reply``: the reply's encoding.

Then the same program run again in the same child (warm), and the whole child's CPU from
``wait4`` (fork, the phases, exit). With ``--pages``, also which of the template's pages the
first run writes, told by the kind of object most of each page holds (``/proc/self/pagemap``:
a page this process alone maps was copied or made by it): where the faults come from, and
whether a sandbox could avoid them. Usage:
``python bench/sandbox_faults.py [--children N] [--pages]``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gc
import json
import os
import resource
import statistics
import struct
import sys
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sandbox_latency import load_program
from tools.sandbox import SandboxConfig, child, compiler, libc, policy, warmup


def _mark() -> tuple[int, float]:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()


def _phases(runner: child.Runner, program: str) -> list[tuple[str, int, float]]:
    """One run, phase by phase, in this (fresh) process: (phase, faults, seconds) each."""
    gc.disable()  # as serve_one_run does
    marks = [("start", *_mark())]
    tree = compiler._parse(program)
    marks.append(("parse", *_mark()))
    transformer = compiler.SandboxTransformer([], [], {})
    transformer.max_bits = runner.arith.max_bits
    transformer.max_depth = runner.max_nesting
    docstring = compiler._docstring(tree)
    tree = transformer.visit(tree)
    compiler._first_again(tree.body, docstring)
    marks.append(("transform", *_mark()))
    code = compile(tree, compiler.FILENAME, "exec", dont_inherit=True)
    marks.append(("compile", *_mark()))
    sink = policy.PrintSink(runner.max_output)
    runner.classes.reset()
    runner.modules.new_run(sink)
    calls = policy.SolutionCalls()
    namespace = policy.make_globals(runner.hooks, sink, calls)
    marks.append(("set up", *_mark()))
    exec(code, namespace)
    reply = runner._answer(namespace, sink, calls)
    marks.append(("run", *_mark()))
    runner.reply_frame(reply)
    marks.append(("reply", *_mark()))
    runner.reply_frame(runner.run(program))
    marks.append(("the same run again, warm", *_mark()))
    return [
        (name, faults - marks[i][1], seconds - marks[i][2])
        for i, (name, faults, seconds) in enumerate(marks[1:])
    ]


def in_children(body: Callable[[], Any], children: int) -> tuple[list[Any], list[float]]:
    """``body``'s JSON answer from each of ``children`` forked children, and each child's CPU
    (user + system, seconds) as ``wait4`` counts it."""
    answers, cpu = [], []
    for _ in range(children):
        read, write = os.pipe()
        pid = libc.fork_without_hooks()
        if pid == 0:
            status = 1
            try:
                os.write(write, json.dumps(body()).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        data = b""
        while chunk := os.read(read, 65536):
            data += chunk
        os.close(read)
        _, status, usage = os.wait4(pid, 0)
        if status != 0:
            raise RuntimeError(f"a child failed (status {status})")
        answers.append(json.loads(data))
        cpu.append(usage.ru_utime + usage.ru_stime)
    return answers, cpu


PAGE = 4096
PM_PRESENT, PM_EXCLUSIVE = 1 << 63, 1 << 56


def _writable_mappings() -> list[tuple[int, int, str]]:
    mappings = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if "w" in fields[1]:
                low, high = (int(x, 16) for x in fields[0].split("-"))
                mappings.append((low, high, fields[5] if len(fields) > 5 else "[anonymous]"))
    return mappings


def _own_pages(mappings: list[tuple[int, int, str]]) -> dict[int, str]:
    """The pages of ``mappings`` this process alone maps (copied or made by it): address ->
    mapping."""
    own = {}
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        for low, high, name in mappings:
            entries = os.pread(fd, (high - low) // PAGE * 8, low // PAGE * 8)
            for i, (entry,) in enumerate(struct.iter_unpack("<Q", entries)):
                if entry & PM_PRESENT and entry & PM_EXCLUSIVE:
                    own[low + i * PAGE] = name
    finally:
        os.close(fd)
    return own


def _kinds_by_page() -> dict[int, collections.Counter[str]]:
    """Each page's objects by kind: the collector's objects, and the code objects, names,
    constants and dict values they hold (which the collector does not track)."""
    pages: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    seen: set[int] = set()

    def note(obj: Any) -> None:
        if id(obj) not in seen:
            seen.add(id(obj))
            pages[id(obj) // PAGE * PAGE][type(obj).__name__] += 1

    for obj in gc.get_objects():
        note(obj)
        if isinstance(obj, types.FunctionType):
            for held in (obj.__code__, *obj.__code__.co_consts, *obj.__code__.co_names):
                note(held)
        elif isinstance(obj, dict):
            for key, value in list(obj.items()):
                note(key)
                note(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                note(value)
    return pages


def written_pages(runner: child.Runner, program: str) -> None:
    """Print which pages of the template the first run of ``program`` writes, by mapping and
    by the kind of object most of each page holds."""
    mappings = _writable_mappings()
    kinds = _kinds_by_page()  # before the freeze: frozen objects are not listed
    gc.freeze()

    def first_run() -> dict[str, Any]:
        gc.disable()
        before = _own_pages(mappings)
        runner.reply_frame(runner.run(program))
        written = {page: name for page, name in _own_pages(mappings).items() if page not in before}
        by_kind: collections.Counter[str] = collections.Counter()
        for page in written:
            found = kinds.get(page)
            by_kind[found.most_common(1)[0][0] if found else "(no object listed)"] += 1
        return {
            "pages": len(written),
            "mappings": collections.Counter(written.values()).most_common(6),
            "kinds": by_kind.most_common(12),
        }

    (answer,), _ = in_children(first_run, 1)
    print(f"pages of the template the first run writes: {answer['pages']}")
    for name, count in answer["mappings"]:
        print(f"  {count:5}  in {name}")
    print("  by the kind of object most of the page holds:")
    for kind, count in answer["kinds"]:
        print(f"  {count:5}  {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--children", type=int, default=100, help="children forked per row")
    parser.add_argument("--pages", action="store_true", help="also the pages a run writes")
    args = parser.parse_args()
    program, origin = load_program()
    runner = child.Runner(dataclasses.asdict(SandboxConfig()))
    warmup.prepare(runner)
    for clear in typing._cleanups:  # type: ignore[attr-defined]
        clear()
    gc.collect()
    if args.pages:
        written_pages(runner, program)  # freezes the heap too
    gc.freeze()  # as the template does before its first fork
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs, cpu = in_children(lambda: _phases(runner, program), args.children)
    _, empty = in_children(lambda: None, args.children)
    print(f"program: {origin}; {args.children} children per row; template-like RSS {rss} KiB")
    print(f"{'phase (medians)':32} {'faults':>7} {'ms':>7}")
    total_faults = total_ms = 0.0
    for i, (name, _, _) in enumerate(runs[0]):
        faults = statistics.median(run[i][1] for run in runs)
        ms = statistics.median(run[i][2] for run in runs) * 1e3
        if i < len(runs[0]) - 1:
            total_faults, total_ms = total_faults + faults, total_ms + ms
        else:
            print(f"{'the first run, all phases':32} {total_faults:7.0f} {total_ms:7.2f}")
        print(f"{name:32} {faults:7.0f} {ms:7.2f}")
    print(f"{'CPU of a child (fork to exit)':32} {'':>7} {statistics.median(cpu) * 1e3:7.2f}")
    print(f"{'CPU of an empty child':32} {'':>7} {statistics.median(empty) * 1e3:7.2f}")


if __name__ == "__main__":
    main()
