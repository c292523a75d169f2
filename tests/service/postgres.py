"""A real Postgres for the store's tests: a throwaway cluster from Debian's ``postgresql``
binaries, in a temporary directory on a free loopback port, one fresh database per test.
Without the binaries the tests that need it fail (``apt-get install postgresql``; the
Makefile installs it when it can): the Postgres store would be untested otherwise."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.service.live import free_port
from tests.service.pg_binaries import as_owner as _as_owner
from tests.service.pg_binaries import bindir as _bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql+asyncpg://postgres@127.0.0.1:<port>``, up for the whole session."""
    bindir = _bindir()
    assert bindir is not None, "the Postgres tests need Postgres: apt-get install postgresql"
    # Not under pytest's own temporary directory: the postgres user must be able to reach it.
    data = Path(tempfile.mkdtemp(prefix="reactpal-postgres-"))
    port = free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(_as_owner([*initdb, "--no-sync"], data), **run)  # type: ignore[call-overload]
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w"]
    subprocess.run(_as_owner([*ctl, "-o", options, "start"], data), **run)  # type: ignore[call-overload]
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_owner([*ctl, "-m", "immediate", "stop"], data), check=False)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A database of its own for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = postgres_server.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(f"{plain}/postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{postgres_server}/{name}"
