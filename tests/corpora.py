"""Access to the shared corpora in ``../shared/corpora`` (never copied into the project)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def corpus_path(name: str) -> Path:
    """The path of one corpus file, or skip the test with the reason when it is absent."""
    path = CORPORA / name
    if not path.is_file():
        pytest.skip(f"corpus {name} not found at {path} (../shared is absent on this checkout)")
    return path


def load_json(name: str) -> Any:
    return json.loads(corpus_path(name).read_text(encoding="utf-8"))


def load_jsonl(name: str) -> list[dict[str, Any]]:
    lines = corpus_path(name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def corpus_ids(name: str, key: str = "id") -> list[str]:
    """Ids for parametrising at collection time; empty when the corpus is absent."""
    path = CORPORA / name
    if not path.is_file():
        return []
    if name.endswith(".jsonl"):
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    else:
        rows = json.loads(path.read_text(encoding="utf-8"))
    return [str(row.get(key, i)) for i, row in enumerate(rows)]
