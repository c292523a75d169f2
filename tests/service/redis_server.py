"""A real Redis for the limit tests: Debian's ``redis-server`` on a free loopback port, no
disk, one fresh database per test. Without the binary the tests that need it fail
(``apt-get install redis-server``; the Makefile installs it when it can): the shared limits
would be untested otherwise."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
import redis

from tests.service.live import free_port

_databases = count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """``redis://127.0.0.1:<port>``, up for the whole session."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    assert Path(binary).exists(), "the limit tests need Redis: apt-get install redis-server"
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="reactpal-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--databases",
            "64",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert process.poll() is None, "redis-server exited at start-up"
                assert time.monotonic() < deadline, "redis-server did not answer in 20 s"
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A database of its own for one test (Redis has 64 here)."""
    url = f"{redis_server}/{next(_databases) % 64}"
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.flushdb()
    return url
