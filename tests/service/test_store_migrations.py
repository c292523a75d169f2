"""The store's schema comes from Alembic migrations: a database made before they existed is
kept (its runs, unchanged), a new one is created, and pages of runs and threads follow."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from service.store import MIGRATIONS, SCHEMA_HEAD, BadCursor, RunStore

# The runs table exactly as the service created it before migrations (SQLAlchemy create_all).
LEGACY = """
CREATE TABLE runs (
    run_id VARCHAR(40) NOT NULL, created_at DATETIME NOT NULL, mode VARCHAR(16) NOT NULL,
    question TEXT NOT NULL, status VARCHAR(16) NOT NULL, answer TEXT, error TEXT,
    steps JSON NOT NULL, usage JSON NOT NULL, details JSON NOT NULL, duration_ms FLOAT NOT NULL,
    PRIMARY KEY (run_id)
);
CREATE INDEX ix_runs_status ON runs (status);
INSERT INTO runs VALUES ('0123abcd', '2026-11-01 10:00:00.000000', 'pal', 'What is 6*7?',
    'finished', '42', NULL, '[{"thought": null, "action": "python", "action_input": "x",
    "observation": "result: 42"}]', '{"prompt_tokens": 9, "completion_tokens": 3,
    "llm_calls": 1}', '{"value": 42}', 12.5);
"""


async def test_a_database_from_before_migrations_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY)
    store = RunStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        run = await store.get("0123abcd")
        assert run is not None
        assert (run["answer"], run["usage"]["prompt_tokens"], run["thread_id"]) == ("42", 9, None)
        assert run["steps"][0]["observation"] == "result: 42"
        assert await store.get("0123abcd", owner="") is not None  # the one owner without keys
        await store.create("fedcba98", "react", "new", owner="")
        assert (await store.list_runs(""))[0][0]["run_id"] == "fedcba98"
    finally:
        await store.aclose()
    with sqlite3.connect(path) as db:
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == SCHEMA_HEAD
    again = RunStore(f"sqlite+aiosqlite:///{path}")
    await again.start()  # twice: nothing to do, no error
    await again.aclose()


async def test_pages_of_runs_are_newest_first_and_scoped_to_the_owner(tmp_path: Path) -> None:
    store = RunStore(f"sqlite+aiosqlite:///{tmp_path}/runs.db")
    await store.start()
    try:
        await store.create_thread("t1", "alice", {})  # a run is recorded in a thread that is
        for n in range(5):  # one run in progress in a thread at a time: the last one
            status = "running" if n == 4 else "finished"
            await store.create(
                f"{n:032x}", "react", f"q{n}", owner="alice", thread_id="t1", status=status
            )
        await store.create("f" * 32, "react", "other", owner="bob")
        seen: list[str] = []
        cursor = None
        for _ in range(5):
            page, cursor = await store.list_runs("alice", limit=2, cursor=cursor)
            seen += [run["question"] for run in page]
            if cursor is None:
                break
        assert seen == ["q4", "q3", "q2", "q1", "q0"]
        assert await store.get("f" * 32, owner="alice") is None
        assert await store.active_run("t1") is not None
        assert await store.mark_interrupted() == 2  # alice's last and bob's
        assert await store.active_run("t1") is None
        with pytest.raises(BadCursor):
            await store.list_runs("alice", cursor="not-a-cursor")
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        assert await store.mark_interrupted(older_than=old) == 0
    finally:
        await store.aclose()


def test_migrate_command_brings_a_database_up_to_date(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/runs.db",
        "LLM_BASE_URL": "http://127.0.0.1:9/v1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "service", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "schema is up to date" in done.stdout
    with sqlite3.connect(tmp_path / "runs.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "threads", "run_events", "feedback", "alembic_version"} <= tables


def test_schema_head_is_alembics_newest_revision() -> None:
    """A store at SCHEMA_HEAD starts without Alembic: the constant must follow every migration."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


async def test_a_database_behind_the_head_is_migrated_at_start(tmp_path: Path) -> None:
    """A database one revision behind (the newest migration undone by its own downgrade) is
    brought to the head at start, and every revision's downgrade works."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    path = tmp_path / "runs.db"
    first = RunStore(f"sqlite+aiosqlite:///{path}")
    await first.start()
    await first.aclose()
    with sqlite3.connect(path) as db:
        before = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:  # as a service one migration older left it
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
    engine.dispose()
    with sqlite3.connect(path) as db:
        (behind,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert {name for (name,) in db.execute("SELECT name FROM sqlite_master")} < before
    assert behind != SCHEMA_HEAD
    again = RunStore(f"sqlite+aiosqlite:///{path}")
    await again.start()
    await again.aclose()
    with sqlite3.connect(path) as db:
        after = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert after == before
    assert version == SCHEMA_HEAD
