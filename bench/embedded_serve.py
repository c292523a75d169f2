"""What a newcomer waits for with the embedded model: start-up, first and later answers, memory.

Starts ``python -m service`` with no LLM variables (the embedded model, which must be prepared:
``make model``) on a loopback port, then times, over real HTTP:

- start-up until ``/healthz`` answers;
- the first PAL answer, sent at once (the background warm-up is still running), and the cold
  start to it: from starting the process to that answer (issue 12's goal: at most 5 s on 2
  cores, which needs the saved warm states: ``python -m service warm``, run by ``make model``;
  ``--no-saved-states`` starts without them, as a first start does);
- a second PAL answer and a ReAct answer a few seconds later, as a person would send them;
- PAL and ReAct answers once the warm-up has finished;
- the server's resident memory at the end.

Prints a table. Not part of ``make bench`` (it needs the model and takes ~2 minutes):
``.venv/bin/python bench/embedded_serve.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
WARM_LINE = re.compile(r"model warm.*seconds=([\d.]+)")
RESTORED_LINE = re.compile(r"warm state restored")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _empty_cache(cache: Path, data: Path) -> str:
    """A model cache holding only the verified model (linked, with its stamp): no warm states."""
    empty = data / "models"
    empty.mkdir()
    for path in cache.glob("*.gguf*"):
        (empty / path.name).symlink_to(path.resolve())
    return str(empty)


def rss_gb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pause", type=float, default=8.0, help="seconds between questions")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per answer")
    parser.add_argument(
        "--no-saved-states",
        action="store_true",
        help="start without the saved warm states (a copy of the model in an empty cache)",
    )
    parser.add_argument(
        "--first-only", action="store_true", help="stop after the first answer (the cold start)"
    )
    args = parser.parse_args()

    port = free_port()
    data = tempfile.mkdtemp(prefix="reactpal-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_")}
    env.update(PORT=str(port), DATABASE_URL=f"sqlite+aiosqlite:///{data}/runs.db")
    env.setdefault("MODEL_CACHE_DIR", str(ROOT / "data" / "models"))
    if args.no_saved_states:
        env["MODEL_CACHE_DIR"] = _empty_cache(Path(env["MODEL_CACHE_DIR"]), Path(data))
    log_path = Path(data) / "server.log"
    rows: list[tuple[str, float, str]] = []
    started = time.monotonic()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        client = httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=args.timeout)
        deadline = started + 120
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print(log_path.read_text()[-2000:], file=sys.stderr)
                return 1
            time.sleep(0.1)
        rows.append(("start-up until /healthz", time.monotonic() - started, ""))

        def ask(label: str, body: dict[str, Any]) -> None:
            t0 = time.monotonic()
            reply = client.post("/ask", json=body)
            answer = reply.json().get("answer") if reply.status_code == 200 else reply.status_code
            rows.append((label, time.monotonic() - t0, str(answer)))

        pal = {"question": "What is 1234 * 5678?", "mode": "pal"}
        seats = "A train has 12 cars with 56 seats each. 407 seats are taken. How many are free?"
        react = {"question": "What is 17 squared plus 3?", "actions": ["python"]}
        ask("first answer (PAL, during warm-up)", pal)
        rows.append(("cold start to first PAL answer", time.monotonic() - started, ""))
        restored = len(RESTORED_LINE.findall(log_path.read_text()))
        rows.append(("warm states restored at start (count)", restored, ""))
        memory = rss_gb(server.pid)
        if args.first_only:
            return _report(rows, memory)
        time.sleep(args.pause)
        ask("second answer (PAL)", {"question": seats, "mode": "pal"})
        time.sleep(args.pause)
        ask("ReAct answer (python)", react)
        warm_deadline = time.monotonic() + 600
        while not (found := WARM_LINE.search(log_path.read_text())):
            if time.monotonic() > warm_deadline:
                break
            time.sleep(0.5)
        if found:
            rows.append(("background warm-up (whole)", float(found.group(1)), ""))
        ask("PAL answer, warm", pal)
        ask("ReAct answer, warm", react)
        memory = rss_gb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    return _report(rows, memory)


def _report(rows: list[tuple[str, float, str]], memory: float) -> int:
    print(f"{'what':<36} {'seconds':>8}  answer")
    for label, seconds, answer in rows:
        print(f"{label:<36} {seconds:>8.1f}  {answer}")
    print(f"{'server RSS at the end':<36} {memory:>8.2f}  GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
