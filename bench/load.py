"""Load on the real service over HTTP: latency, throughput, statuses and CPU per run.

Starts a scripted OpenAI-compatible model (``bench/load_llm.py``, separate processes: each
answer of a run's four LLM calls, three ``python`` steps then ``finish``, comes after
``--llm-delay-ms``, and ``--fault-rate`` of them are an HTTP 500 or a garbled step), then
``python -m service`` on a free loopback port (``RATE_LIMIT`` off, a temporary ``DATA_DIR``,
``WORKERS`` and ``DATABASE_URL`` from the sweep; ``postgres`` is a throwaway cluster of
Debian's binaries, as the tests start it). For each concurrency level, N clients, each with
an API key of its own (``AGENT_API_KEYS``; ``--one-client`` sends no key, so that the service
sees a single client), send ``POST /ask`` (JSON) ``--runs-per-client`` times each; one table
per configuration:

- latency p50 / p99 of the 200 answers, runs/s (200 answers over the level's wall time),
  against the ideal latency, 4 x delay + 50 ms;
- statuses: 200, 429, 503, other 5xx, other 4xx, client errors and timeouts; whether every
  429/503 carried ``Retry-After``;
- CPU seconds per run of the service (its process tree: workers, sandbox), of the scripted
  model, of Postgres, and of this client;
- lost runs: a 200 without a ``run_id``, or whose ``GET /runs/{id}`` is not a 200 in a
  terminal status; and how many answers were right (the script's answer).

``--measure-llm-alone`` instead drives the scripted model directly at the same concurrency
levels, with the requests a run makes: it shows the model is not what limits the service.

    python bench/load.py --quick
    python bench/load.py --concurrency 10,100,500 --workers 1,2 --database sqlite,postgres
    python bench/load.py --measure-llm-alone --concurrency 10,100,500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load_llm import PYTHON_STEPS, answer, next_step, question  # noqa: E402

from agents.react.prompt import FINISH_DOC, ActionDoc, text_system_prompt  # noqa: E402
from tests.service.pg_binaries import as_owner as _as_owner  # noqa: E402
from tests.service.pg_binaries import bindir as _bindir  # noqa: E402
from tools.python_tool import PythonTool  # noqa: E402

LLM_CALLS_PER_RUN = PYTHON_STEPS + 1
IDEAL_OVERHEAD_S = 0.05  # the service, the sandbox's three programs and the store, unloaded
TERMINAL = {"finished", "max_steps", "timeout", "error", "cancelled", "interrupted"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of it and of its reaped children), from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        found[int(entry)] = (int(fields[1]), ticks / CLK_TCK)
    return found


def tree(root: int) -> list[int]:
    """``root`` and every process below it (namespaced sandbox processes included)."""
    stats = _stats()
    out, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        if pid in stats:
            out.append(pid)
            frontier.extend(p for p, (parent, _) in stats.items() if parent == pid)
    return out


def tree_cpu_s(root: int | None) -> float:
    """CPU seconds of a process tree: a live process's own, plus the children it has reaped
    (a sandbox run's process, a Postgres backend), so nothing is counted twice."""
    if root is None:
        return 0.0
    stats = _stats()
    return sum(stats[p][1] for p in tree(root) if p in stats)


def stop(process: subprocess.Popen[bytes], name: str) -> None:
    """SIGTERM, then SIGKILL; then any process it left below it, by id."""
    below = tree(process.pid)[1:]
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"({name} ignored SIGTERM for 30 s: killed)", file=sys.stderr)
            process.kill()
            process.wait()
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclasses.dataclass
class ScriptedLLM:
    base_url: str
    processes: list[subprocess.Popen[bytes]]


@contextlib.contextmanager
def scripted_llm(delay_ms: float, fault_rate: float, procs: int) -> Iterator[ScriptedLLM]:
    """``procs`` processes of ``bench/load_llm.py`` sharing one listening socket."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    port = sock.getsockname()[1]
    command = [sys.executable, str(Path(__file__).with_name("load_llm.py"))]
    options = ["--fd", str(sock.fileno()), "--delay-ms", str(delay_ms)]
    options += ["--fault-rate", str(fault_rate)]
    processes = [
        subprocess.Popen([*command, *options], pass_fds=[sock.fileno()]) for _ in range(procs)
    ]
    sock.close()  # the children hold it
    llm = ScriptedLLM(f"http://127.0.0.1:{port}/v1", processes)
    try:
        with httpx2.Client(timeout=5) as client:
            deadline = time.monotonic() + 30
            while client.get(f"{llm.base_url}/models").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the scripted model did not start")
                time.sleep(0.05)
        yield llm
    finally:
        for process in processes:
            stop(process, "the scripted model")


@dataclasses.dataclass
class Postgres:
    url: str  # postgresql+asyncpg://postgres@127.0.0.1:<port>
    data: Path
    bindir: Path

    def postmaster(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def new_database(self, name: str) -> str:
        port = self.url.rsplit(":", 1)[1]
        command = [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", port, "-U", "postgres"]
        subprocess.run([*command, name], check=True, capture_output=True, timeout=60)
        return f"{self.url}/{name}"


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A throwaway cluster, as ``tests/service/postgres.py`` starts one for the tests."""
    bindir = _bindir()
    if bindir is None:
        raise SystemExit("--database postgres needs Postgres: apt-get install postgresql")
    data = Path(tempfile.mkdtemp(prefix="reactpal-load-postgres-"))
    port = free_port()
    run: dict[str, Any] = {"check": True, "capture_output": True, "timeout": 120}
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(_as_owner([*initdb, "--no-sync"], data), **run)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    options += " -c max_connections=300"
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w"]
    subprocess.run(_as_owner([*ctl, "-o", options, "start"], data), **run)
    try:
        yield Postgres(f"postgresql+asyncpg://postgres@127.0.0.1:{port}", data, bindir)
    finally:
        subprocess.run(_as_owner([*ctl, "-m", "immediate", "stop"], data), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@dataclasses.dataclass
class Service:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path


@contextlib.contextmanager
def service(
    llm_url: str, workers: int, database_url: str | None, extra: dict[str, str]
) -> Iterator[Service]:
    data = Path(tempfile.mkdtemp(prefix="reactpal-load-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "DATABASE_URL"))}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        LLM_BASE_URL=llm_url,
        RATE_LIMIT="",
        DATA_DIR=str(data),
        WORKERS=str(workers),
        **extra,
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    log = data / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / ".venv/bin/python"), "-m", "service"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Service(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(running)
        yield running
    finally:
        stop(process, "the service")
        shutil.rmtree(data, ignore_errors=True)


def _wait_ready(running: Service) -> None:
    deadline = time.monotonic() + 90
    last = "no answer"
    with httpx2.Client(base_url=running.base_url, timeout=15) as client:
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                break
            try:
                reply = client.get("/readyz")
                if reply.status_code == 200:
                    return
                last = f"{reply.status_code} {reply.text[:300]}"
            except httpx2.TransportError as exc:
                last = repr(exc)
            time.sleep(0.2)
    tail = running.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the service never got ready ({last}); its log ends:\n{tail}")


# -- the load -------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    status: str  # "200", "503", ..., or "timeout" / "error" (the client's)
    latency_s: float
    run_id: str | None = None
    retry_after: bool = False
    right: bool = False
    llm_calls: int = 0
    key: str | None = None  # the client's API key: its runs are its own


def api_key(client: int) -> str:
    return f"load-client-{client:06d}-key"


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


async def _ask(client: httpx2.AsyncClient, case: tuple[int, int], key: str | None) -> Outcome:
    body = {"question": question(*case), "actions": ["python"]}
    started = time.perf_counter()
    try:
        reply = await client.post("/ask", json=body, headers=_auth(key))
    except httpx2.TimeoutException:
        return Outcome("timeout", time.perf_counter() - started, key=key)
    except httpx2.HTTPError as exc:
        return Outcome(f"error:{type(exc).__name__}", time.perf_counter() - started, key=key)
    latency = time.perf_counter() - started
    try:
        parsed: object = reply.json()
    except ValueError:
        parsed = None
    data: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    run_id = data.get("run_id") if isinstance(data.get("run_id"), str) else None
    raw_usage = data.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    return Outcome(
        str(reply.status_code),
        latency,
        run_id,
        retry_after="retry-after" in reply.headers,
        right=data.get("answer") == answer(*case),
        llm_calls=int(usage.get("llm_calls") or 0),
        key=key,
    )


async def drive(
    base_url: str, concurrency: int, runs_per_client: int, timeout_s: float, keys: bool
) -> tuple[list[Outcome], float]:
    """Every client, with a connection of its own (one shared pool of hundreds costs httpx
    milliseconds of CPU per request) and, with ``keys``, an API key of its own, sends its runs
    one after another; returns the outcomes and the wall time. The clients are made before the
    clock starts."""
    tls = ssl.create_default_context()  # plain HTTP; shared, as loading one costs 0.1 s
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(concurrency):
            client = httpx2.AsyncClient(base_url=base_url, timeout=timeout_s, verify=tls)
            clients.append(await stack.enter_async_context(client))

        async def one_client(n: int) -> list[Outcome]:
            key = api_key(n) if keys else None
            return [await _ask(clients[n], (n + 2, r + 3), key) for r in range(runs_per_client)]

        started = time.perf_counter()
        per_client = await asyncio.gather(*(one_client(n) for n in range(concurrency)))
        wall = time.perf_counter() - started
    return [o for outcomes in per_client for o in outcomes], wall


async def lost_runs(base_url: str, outcomes: list[Outcome]) -> list[str]:
    """What is wrong with the stored runs: every 200 has a run_id, and every run_id that came
    back (a 502 or 504 carries one too) is a 200 from ``GET /runs/{id}``, in a terminal status."""
    problems = [
        f"a {o.status} without run_id" for o in outcomes if o.status == "200" and not o.run_id
    ]
    gate = asyncio.Semaphore(16)
    async with httpx2.AsyncClient(base_url=base_url, timeout=60) as client:

        async def check(run_id: str, key: str | None) -> str | None:
            async with gate:
                reply = await client.get(f"/runs/{run_id}", headers=_auth(key))
            if reply.status_code != 200:
                return f"GET /runs/{run_id}: {reply.status_code}"
            status = reply.json().get("status")
            return None if status in TERMINAL else f"run {run_id} is {status}"

        found = await asyncio.gather(*(check(o.run_id, o.key) for o in outcomes if o.run_id))
    return problems + [p for p in found if p]


# -- the table ------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    concurrency: int
    outcomes: list[Outcome]
    wall_s: float
    cpu_s: dict[str, float]  # service, llm, db, client
    problems: list[str]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


HEADER = (
    f"{'conc':>5} {'runs':>5} {'p50 s':>6} {'p99 s':>6} {'runs/s':>7} {'p99/ideal':>9} "
    f"{'200':>5} {'429':>4} {'503':>4} {'5xx':>4} {'4xx':>4} {'err':>4} {'Retry-After':>11} "
    f"{'calls/run':>9} {'right':>5} {'lost':>4} "
    f"{'CPU s/run: svc':>14} {'llm':>6} {'db':>6} {'client':>6}"
)


LEGEND = (
    "latency of the 200s; runs/s: 200s over the wall time; ideal: 4 x delay + 50 ms; "
    "err: the client's errors and timeouts; right: answers as scripted; lost: see below; "
    "CPU per run started (a run_id came back)"
)


def format_row(row: Row, ideal_s: float) -> str:
    statuses = Counter(o.status for o in row.outcomes)
    ok = [o for o in row.outcomes if o.status == "200"]
    latencies = [o.latency_s for o in ok]
    fives = sum(v for k, v in statuses.items() if k.startswith("5") and k != "503")
    fours = sum(v for k, v in statuses.items() if k.startswith("4") and k != "429")
    errors = sum(v for k, v in statuses.items() if not k[0].isdigit())
    limited = [o for o in row.outcomes if o.status in ("429", "503")]
    carried = sum(o.retry_after for o in limited)
    retry = (
        "-" if not limited else "all" if carried == len(limited) else f"{carried}/{len(limited)}"
    )
    runs = len(row.outcomes)
    started = sum(o.run_id is not None for o in row.outcomes) or runs  # a 503 starts no run
    per_run = {k: v / started for k, v in row.cpu_s.items()}
    db = f"{per_run['db']:6.3f}" if "db" in per_run else f"{'-':>6}"
    calls = statistics.fmean(o.llm_calls for o in ok) if ok else float("nan")
    return (
        f"{row.concurrency:>5} {runs:>5} {_p(latencies, 0.5):>6.2f} {_p(latencies, 0.99):>6.2f} "
        f"{len(ok) / row.wall_s:>7.1f} {_p(latencies, 0.99) / ideal_s:>9.1f} "
        f"{statuses['200']:>5} {statuses['429']:>4} {statuses['503']:>4} {fives:>4} {fours:>4} "
        f"{errors:>4} {retry:>11} {calls:>9.2f} {sum(o.right for o in ok):>5} "
        f"{len(row.problems):>4} {per_run['service']:>14.3f} {per_run['llm']:>6.3f} {db} "
        f"{per_run['client']:>6.3f}"
    )


def client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    running: Service,
    llm: ScriptedLLM,
    db: Postgres | None,
    concurrency: int,
    args: argparse.Namespace,
) -> Row:
    roots: dict[str, list[int | None]] = {
        "service": [running.process.pid],
        "llm": [p.pid for p in llm.processes],
        **({"db": [db.postmaster()]} if db else {}),
    }

    def cpu() -> dict[str, float]:
        out = {name: sum(tree_cpu_s(pid) for pid in pids) for name, pids in roots.items()}
        return {**out, "client": client_cpu_s()}

    before = cpu()
    outcomes, wall = await drive(
        running.base_url, concurrency, args.runs_per_client, args.timeout, not args.one_client
    )
    after = cpu()
    problems = await lost_runs(running.base_url, outcomes)
    spent = {name: after[name] - before[name] for name in after}
    return Row(concurrency, outcomes, wall, spent, problems)


async def warm_up(base_url: str, key: str | None) -> float:
    """One run alone, not counted: the first sandbox run and the first store write."""
    async with httpx2.AsyncClient(base_url=base_url, timeout=120) as client:
        await _ask(client, (1, 1), key)
        outcome = await _ask(client, (1, 2), key)
    if outcome.status != "200":
        raise RuntimeError(f"a run alone answered {outcome.status}")
    return outcome.latency_s


def sweep(args: argparse.Namespace) -> int:
    ideal = LLM_CALLS_PER_RUN * args.llm_delay_ms / 1000 + IDEAL_OVERHEAD_S
    extra = (
        {"MAX_CONCURRENT_RUNS": str(args.max_concurrent_runs)} if args.max_concurrent_runs else {}
    )
    keys = [] if args.one_client else [api_key(n) for n in range(max(args.concurrency))]
    if keys:
        extra["AGENT_API_KEYS"] = ",".join(keys)
    failed = False
    with contextlib.ExitStack() as stack:
        llm = stack.enter_context(scripted_llm(args.llm_delay_ms, args.fault_rate, args.llm_procs))
        db = stack.enter_context(postgres_cluster()) if "postgres" in args.database else None
        for database in args.database:
            for workers in args.workers:
                url = db.new_database(f"load_w{workers}") if database == "postgres" and db else None
                with service(llm.base_url, workers, url, extra) as running:
                    alone = asyncio.run(warm_up(running.base_url, keys[0] if keys else None))
                    print(
                        f"\nworkers={workers} database={database} "
                        f"llm delay={args.llm_delay_ms:g} ms "
                        f"fault rate={args.fault_rate:g} runs/client={args.runs_per_client} "
                        f"ideal={ideal:.2f} s one run alone={alone:.2f} s"
                        + (
                            f" MAX_CONCURRENT_RUNS={args.max_concurrent_runs}"
                            if args.max_concurrent_runs
                            else ""
                        )
                    )
                    print(LEGEND)
                    print(HEADER, flush=True)
                    for concurrency in args.concurrency:
                        pg = db if database == "postgres" else None
                        row = asyncio.run(measure(running, llm, pg, concurrency, args))
                        print(format_row(row, ideal), flush=True)
                        for problem in row.problems[:5]:
                            print(f"      lost: {problem}")
                        failed |= bool(row.problems)
    return 1 if failed else 0


# -- the scripted model alone ---------------------------------------------------------------


def _conversations() -> list[dict[str, Any]]:
    """The four requests of a run, as the service sends them (its real system prompt)."""
    python = ActionDoc(PythonTool.name, PythonTool.input_hint, PythonTool.description)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": text_system_prompt([python, FINISH_DOC])},
        {"role": "user", "content": f"Question: {question(6, 7)}"},
    ]
    bodies = []
    for k in range(LLM_CALLS_PER_RUN):
        bodies.append(
            {
                "model": "scripted",
                "messages": list(messages),
                "temperature": 0.0,
                "max_tokens": 768,
                "stop": ["Observation"],
            }
        )
        messages.append({"role": "assistant", "content": next_step(messages)})
        messages.append({"role": "user", "content": f"Observation: {6 * 7 + k}"})
    return bodies


def _raw_requests(base_url: str) -> list[bytes]:
    """The four requests of a run as HTTP/1.1 bytes, encoded once: the client that hammers the
    scripted model must cost less than the model, which httpx at 500 connections does not."""
    host, path = base_url.removeprefix("http://").split("/", 1)
    out = []
    for body in _conversations():
        payload = json.dumps(body).encode()
        head = (
            f"POST /{path}/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        )
        out.append(head.encode() + payload)
    return out


async def hammer(
    base_url: str, concurrency: int, calls_per_client: int
) -> tuple[Counter[int], list[float], float]:
    """``concurrency`` keep-alive connections, each sending its calls one after another."""
    requests = _raw_requests(base_url)
    host, port = base_url.removeprefix("http://").split("/", 1)[0].split(":")

    async def one_client() -> list[tuple[int, float]]:
        reader, writer = await asyncio.open_connection(host, int(port))
        out = []
        try:
            for n in range(calls_per_client):
                started = time.perf_counter()
                writer.write(requests[n % len(requests)])
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = next(
                    int(line.split(":", 1)[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length:")
                )
                await reader.readexactly(length)
                out.append((int(head.split(" ", 2)[1]), time.perf_counter() - started))
        finally:
            writer.close()
        return out

    started = time.perf_counter()
    results = await asyncio.gather(*(one_client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    flat = [r for rs in results for r in rs]
    return Counter(s for s, _ in flat), [t for _, t in flat], wall


def measure_llm_alone(args: argparse.Namespace) -> int:
    delay = args.llm_delay_ms / 1000
    print(
        f"the scripted model alone: delay={args.llm_delay_ms:g} ms fault rate={args.fault_rate:g} "
        f"processes={args.llm_procs} calls/client={args.alone_calls}"
    )
    print(
        f"{'conc':>5} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7} {'calls/s':>8} {'ideal/s':>8} "
        f"{'runs/s eq':>9} {'llm CPU ms/call':>15} {'calls/s/core':>12} {'client CPU s':>12} "
        "statuses"
    )
    with scripted_llm(args.llm_delay_ms, args.fault_rate, args.llm_procs) as llm:
        for concurrency in args.concurrency:
            before = sum(tree_cpu_s(p.pid) for p in llm.processes)
            client_before = client_cpu_s()
            statuses, latencies, wall = asyncio.run(
                hammer(llm.base_url, concurrency, args.alone_calls)
            )
            cpu = sum(tree_cpu_s(p.pid) for p in llm.processes) - before
            calls = len(latencies)
            per_core = f"{calls / cpu:12,.0f}" if cpu > 0 else f"{'>' + str(calls * 100):>12}"
            shown = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
            print(
                f"{concurrency:>5} {calls:>6} {_p(latencies, 0.5) * 1000:>7.1f} "
                f"{_p(latencies, 0.99) * 1000:>7.1f} {calls / wall:>8.0f} "
                f"{concurrency / delay if delay else float('inf'):>8.0f} "
                f"{calls / wall / LLM_CALLS_PER_RUN:>9.0f} {cpu / calls * 1000:>15.3f} {per_core} "
                f"{client_cpu_s() - client_before:>12.2f} {shown}",
                flush=True,
            )
    return 0


# -- main -----------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _databases(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    for name in names:
        if name not in ("sqlite", "postgres"):
            raise argparse.ArgumentTypeError(f"unknown database {name!r}: sqlite or postgres")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--concurrency", type=_ints, default=[10, 100, 500])
    parser.add_argument("--runs-per-client", type=int, default=1)
    parser.add_argument("--workers", type=_ints, default=[1], help="WORKERS values, e.g. 1,2")
    parser.add_argument("--database", type=_databases, default=["sqlite"], help="sqlite,postgres")
    parser.add_argument("--llm-delay-ms", type=float, default=200.0)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="e.g. 0.05")
    parser.add_argument("--llm-procs", type=int, default=1, help="scripted model processes")
    parser.add_argument(
        "--max-concurrent-runs", type=int, help="MAX_CONCURRENT_RUNS (unset: default)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="client timeout per request")
    parser.add_argument(
        "--one-client",
        action="store_true",
        help="no API keys: every request is one client (one address) to the service, so "
        "MAX_CONCURRENT_RUNS_PER_CLIENT applies to them all",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 clients, 2 runs each")
    parser.add_argument("--measure-llm-alone", action="store_true")
    parser.add_argument("--alone-calls", type=int, default=20, help="calls per client, alone")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.runs_per_client, args.workers = [5], 2, args.workers[:1]
        args.alone_calls = 8
    if args.measure_llm_alone:
        return measure_llm_alone(args)
    return sweep(args)


if __name__ == "__main__":
    sys.exit(main())
