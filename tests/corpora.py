"""Access to the corpora the project carries in ``tests/corpora`` (see its README).

A missing or empty corpus fails the test that needs it: a security test that silently
skipped on a checkout without its attacks would be worse than no test.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

CORPORA = Path(__file__).resolve().parent / "corpora"


def corpus_path(name: str) -> Path:
    """The path of one corpus file; fails the test when it is missing."""
    path = CORPORA / name
    if not path.is_file() or path.stat().st_size == 0:
        pytest.fail(f"corpus {name} is missing at {path}: the project must carry it")
    return path


def load_json(name: str) -> Any:
    return json.loads(corpus_path(name).read_text(encoding="utf-8"))


@cache
def load_jsonl(name: str) -> list[dict[str, Any]]:
    lines = corpus_path(name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def corpus_ids(name: str, key: str = "id") -> list[str]:
    """Ids for parametrising at collection time; a single failing id when the corpus is
    missing, so that collection still produces a test that fails."""
    path = CORPORA / name
    if not path.is_file():
        return [f"MISSING-{name}"]
    if name.endswith(".jsonl"):
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    else:
        rows = json.loads(path.read_text(encoding="utf-8"))
    return [str(row.get(key, i)) for i, row in enumerate(rows)] or [f"EMPTY-{name}"]
