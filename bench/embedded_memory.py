"""Memory of the service under the embedded model: N mixed runs (PAL math, date and objects,
ReAct with python) against a running container, printing the service process's RSS after
each, then the range. Used to check the README's figure.

    docker run -d --name reactpal-mem --network host -e HOST=127.0.0.1 reactpal
    python bench/embedded_memory.py --container reactpal-mem --runs 40 [--vary]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import urllib.request
from typing import Any

QUESTIONS: list[dict[str, Any]] = [
    {"question": "What is 987 * 654 - 321?", "mode": "pal"},
    {
        "question": "How many days are there between 1969-07-20 and 1989-11-09?",
        "mode": "pal",
        "task": "date",
    },
    {
        "question": "Olivia has $23. She bought five bagels for $3 each. "
        "How much money does she have left?",
        "mode": "pal",
    },
    {"question": "What is 1234 * 5678?", "actions": ["python"]},
    {
        "question": "I have a chair, two potatoes, a cauliflower, a lettuce head, two tables. "
        "How many vegetables do I have?",
        "mode": "pal",
        "task": "objects",
    },
]


def rss_mb(container: str) -> int:
    out = subprocess.run(
        ["docker", "exec", container, "grep", "VmRSS", "/proc/1/status"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    return int(out[1]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container", required=True)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--vary", action="store_true", help="new numbers in every question")
    args = parser.parse_args()
    seen: list[int] = []
    print(f"{'run':>4} {'seconds':>8} {'rss MB':>7}  status answer")
    for i in range(args.runs):
        body = dict(QUESTIONS[i % len(QUESTIONS)])
        if args.vary:
            body["question"] = body["question"].replace("987", str(100 + 7 * i))
            body["question"] = body["question"].replace("1234", str(1000 + 13 * i))
        request = urllib.request.Request(
            f"{args.url}/ask",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=600) as response:
            answer = json.load(response)
        seen.append(rss_mb(args.container))
        took = time.monotonic() - started
        print(f"{i + 1:>4} {took:>8.1f} {seen[-1]:>7}  {answer['status']} {answer['answer']}")
    print(f"RSS over {len(seen)} runs: {min(seen)}-{max(seen)} MB (last {seen[-1]})")


if __name__ == "__main__":
    main()
