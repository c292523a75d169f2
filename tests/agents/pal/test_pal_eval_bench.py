"""bench/pal_eval.py: its dataset loads and its scoring is right (the run itself is a bench)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.pal import TASKS
from bench.pal_eval import DEFAULT_DATA, is_correct, load


def test_small_dataset_is_well_formed() -> None:
    items = load(DEFAULT_DATA, None)
    assert 25 <= len(items) <= 40
    assert {item.task for item in items} == set(TASKS)
    assert len({item.question for item in items}) == len(items)


def test_pal_repo_shape_is_accepted(tmp_path: Path) -> None:
    data = tmp_path / "gsm.jsonl"
    data.write_text(
        '{"input": "What is 2 + 2?", "target": 4.0}\n\n{"question": "Q", "target": 1}\n'
    )
    items = load(data, None)
    assert [(i.question, i.target, i.task) for i in items] == [
        ("What is 2 + 2?", 4.0, "math"),
        ("Q", 1, "math"),
    ]
    assert len(load(data, 1)) == 1
    data.write_text('{"prompt": "x"}\n')
    with pytest.raises(SystemExit):
        load(data, None)


@pytest.mark.parametrize(
    ("answer", "value", "target", "expected"),
    [
        ("12", None, 12, True),
        ("The answer is $1,250.50.", None, 1250.5, True),
        ("8.33", None, 8.333333, False),
        (None, 8.3333333333, 8.333333, True),
        ("3244047.1", 3244047.0999999996, 3244047.0999999996, True),
        ("First 3 then 7", None, 7, True),
        ("no number", None, 7, False),
        ("It ends on a Friday.", None, "Friday", True),
        ("01/11/2024", "01/11/2024", "01/11/2024", True),
        ("01/12/2024", "01/12/2024", "01/11/2024", False),
    ],
)
def test_scoring(answer: str | None, value: object, target: object, expected: bool) -> None:
    assert is_correct(answer, target, value) is expected
