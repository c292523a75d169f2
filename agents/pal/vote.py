"""Self-consistency: the majority vote over the results of k sampled programs.

- Numbers are compared as numbers: ``8``, ``8.0`` and ``"8"`` agree, and so do ``"$1,250"``
  and ``1250``; floats agree within ``REL_TOL``/``ABS_TOL`` (``0.1 + 0.2`` and ``0.3``).
- Strings are compared with case and surrounding or repeated whitespace ignored; booleans
  only agree with booleans; lists and dicts must be equal as JSON.
- A sample that failed (no program, an error, or no result) is passed as ``None``: it does not
  vote, but it counts in the agreement ratio (agreement = winning votes / samples drawn), so
  3 agreeing samples out of 5 with 2 failures is 0.6, not 1.0.
- A tie goes to the answer whose first vote came earliest (sample order is deterministic:
  PAL puts its greedy sample first, so a tie goes to the greedy answer when it is in the
  tie), and is reported (``tie``).
- The winning value is the exact value of the earliest sample in its group.
- ``decided(pending)``: whether samples still to come could change the winner. Only when
  they could not is it safe to stop drawing them (the winner then is the one the full vote
  gives); a tie they could force counts as a change.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.pal.format import format_answer
from agents.policy import truncated

REL_TOL = 1e-6
ABS_TOL = 1e-6

# One way to read each digit (``\d+\.?\d*`` had n for n digits: a 20,000-digit result
# took seconds per comparison, in the event loop).
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_THOUSANDS = re.compile(r"^([-+]?)(\d{1,3}(?:,\d{3})+)(\.\d+)?$")


@dataclass(frozen=True, slots=True)
class Vote:
    value: Any  # the exact value of the group's earliest sample
    count: int
    first_sample: int  # index of the earliest sample that voted for it

    @property
    def answer(self) -> str:
        """The display string of ``value``, made when asked: a vote is taken after every
        step, and displaying 10,000 floats for each answer each time held the event loop
        for a second (red-team pass FB)."""
        return format_answer(self.value)


@dataclass(frozen=True, slots=True)
class VoteResult:
    votes: tuple[Vote, ...]  # most votes first; ties in order of first appearance
    samples: int  # samples drawn, failures included
    tie: bool  # the winner shares its count with another answer

    @property
    def winner(self) -> Vote | None:
        return self.votes[0] if self.votes else None

    @property
    def voters(self) -> int:
        return sum(v.count for v in self.votes)

    @property
    def agreement(self) -> float:
        winner = self.winner
        return round(winner.count / self.samples, 4) if winner and self.samples else 0.0

    def decided(self, pending: int) -> bool:
        """Whether the winner stays the winner whatever ``pending`` more samples vote: it
        leads the runner-up (or an answer nobody has given yet) by more than ``pending``."""
        winner = self.winner
        if winner is None:
            return False
        runner_up = self.votes[1].count if len(self.votes) > 1 else 0
        return winner.count > runner_up + pending

    def as_details(self) -> list[dict[str, Any]]:
        """Each answer cut as an observation is (the winner's value is ``details.value``)."""
        return [{"answer": truncated(v.answer), "count": v.count} for v in self.votes]


Ballot = tuple[str, Any]  # what a result is compared by (``ballot``)


def as_number(value: Any) -> int | float | None:
    """``value`` as a number when it is one or is text of one ("8", " 8.0 ", "$1,250"), or
    a short line that labels one number: "The final answer is 45.98", "Total: $1,250." (a
    small model's programs print their answer so: two samples agreeing on 45.98 were two
    answers in the vote: pass FO)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        return None
    number = _number_text(value)
    if number is None and len(value) <= _LABELLED_MAX:
        labelled = _LABELLED.search(value)
        if labelled and not any(char.isdigit() for char in value[: labelled.start()]):
            number = _number_text(labelled.group(1))
    return number


_LABELLED_MAX = 200  # a line, not a paragraph that happens to end with a number
# "... is 45.98", "...: $1,250.", "... = -3": a label, then the line's only number, at its end
_LABELLED = re.compile(r"(?:\bis|:|=)\s*(\$?\s*[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?)\s*\.?\s*$")


def _number_text(value: str) -> int | float | None:
    text = value.strip().replace("$", "", 1).strip()
    grouped = _THOUSANDS.match(text)
    if grouped:
        text = grouped.group(1) + grouped.group(2).replace(",", "") + (grouped.group(3) or "")
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def same_number(a: int | float, b: int | float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    except OverflowError:  # an int too large for a float cannot be close to a float
        return False


def _key(value: Any) -> tuple[str, Any]:
    """The comparison key for a non-numeric value."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("str", " ".join(value.split()).casefold())
    try:
        return ("json", json.dumps(value, sort_keys=True, default=str))
    except (TypeError, ValueError):
        return ("repr", repr(value))


def ballot(value: Any) -> Ballot:
    """What ``value`` is compared by, made once: ``("number", n)``, or its key as text."""
    number = as_number(value)
    return ("number", number) if number is not None else _key(value)


def agrees(a: Any, b: Any) -> bool:
    """Whether two results count as the same answer."""
    return _same(ballot(a), ballot(b))


def _same(a: Ballot, b: Ballot) -> bool:
    if a[0] == "number" and b[0] == "number":
        return same_number(a[1], b[1])
    return a == b


def majority_vote(
    results: Sequence[Any], ballots: Sequence[Ballot | None] | None = None
) -> VoteResult:
    """Vote over the samples' results in sample order; ``None`` marks a failed sample.
    ``ballots`` (``ballot`` of each result, None for a failed one) when the caller keeps
    them: each result is then read once per sample, not once per comparison (red-team
    pass FB: 8 samples of 10,000 floats, serialised for every pair at every step)."""
    if ballots is None:
        ballots = [None if value is None else ballot(value) for value in results]
    groups: list[list[int]] = []  # sample indices per answer, in order of first appearance
    by_key: dict[Ballot, list[int]] = {}  # answers compared exactly
    numbers: list[tuple[int | float, list[int]]] = []  # within a tolerance: one by one
    for index, (value, cast) in enumerate(zip(results, ballots, strict=True)):
        if value is None or cast is None:
            continue
        if cast[0] == "number":
            group = next((g for n, g in numbers if same_number(n, cast[1])), None)
            if group is None:
                group = []
                numbers.append((cast[1], group))
                groups.append(group)
        else:
            group = by_key.get(cast)
            if group is None:
                group = by_key[cast] = []
                groups.append(group)
        group.append(index)
    # sorted() is stable: equal counts keep their order of first appearance.
    ranked = sorted(groups, key=len, reverse=True)
    votes = tuple(Vote(results[g[0]], len(g), g[0]) for g in ranked)
    tie = len(votes) > 1 and votes[0].count == votes[1].count
    return VoteResult(votes=votes, samples=len(results), tie=tie)
