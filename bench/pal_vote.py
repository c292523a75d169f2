"""How long PAL's vote holds the event loop over large results (red-team pass FB).

Evaluation, not a test. A run votes after every step that ends, over the samples ended so
far; this times those votes for ``--samples`` results of ``--items`` floats each, all equal
but their last item (so every pair is compared), and the details made at the end.

    .venv/bin/python bench/pal_vote.py [--samples 8] [--items 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from agents.pal.vote import ballot, majority_vote


def one_run(samples: int, items: int, rng: random.Random) -> tuple[float, float]:
    """Seconds spent in the votes of one run (one after each step), and in its details."""
    results = [[rng.random() for _ in range(items)] for _ in range(samples)]
    ballots = []
    started = time.perf_counter()
    for ended in range(1, samples + 1):
        ballots.append(ballot(results[ended - 1]))  # made once, when the sample ends
        outcome = majority_vote(results[:ended], ballots)
        outcome.decided(samples - ended)
    voting = time.perf_counter() - started
    started = time.perf_counter()
    outcome.as_details()
    return voting, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    runs = [one_run(args.samples, args.items, rng) for _ in range(args.repeat)]
    votes, details = [v for v, _ in runs], [d for _, d in runs]
    print(f"{args.samples} samples of {args.items} floats, {args.repeat} runs\n")
    print("| what | median | max |\n|---|---|---|")
    print(
        f"| the {args.samples} votes of a run | {statistics.median(votes) * 1e3:.1f} ms "
        f"| {max(votes) * 1e3:.1f} ms |"
    )
    print(
        f"| its details (each answer displayed, cut) | {statistics.median(details) * 1e3:.1f} ms "
        f"| {max(details) * 1e3:.1f} ms |"
    )


if __name__ == "__main__":
    main()
