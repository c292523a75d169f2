"""Start-up. What ``python -m service`` imports before it serves: the cold start of the
embedded model (issue 12) has no room for libraries that only some servers use. The MCP SDK
is imported on the first ``/mcp`` request (service.mcp_door), Alembic when the schema is
behind (service.store), redis with a Redis limits store (service.admission). And the parts
that start concurrently (the sandbox, the model) still stop the start when they fail."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from service.app import create_app
from service.settings import Settings
from tests.fakes.search import FakeSearchProvider
from tools.sandbox import Sandbox, SandboxConfig, SandboxStartError

DEFERRED = ("mcp", "mcp_types", "alembic", "redis")

PROGRAM = """
import json, sys
import service.__main__
from service.app import create_app
from service.settings import Settings
create_app(Settings(llm_base_url="http://127.0.0.1:9/v1"))
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_building_the_app_imports_none_of_the_optional_libraries() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "fastapi" in loaded  # the program did build the app
    assert loaded.isdisjoint(DEFERRED), sorted(loaded & set(DEFERRED))


async def test_a_sandbox_that_cannot_start_stops_the_start_with_its_error(
    settings_for: Callable[..., Settings],
) -> None:
    """The sandbox starts while the rest of the app is set up: its failure is still the
    start's, and nothing is left running."""

    class Broken(Sandbox):
        async def start(self) -> None:
            await asyncio.sleep(0.05)  # fails after the store and the tools are set up
            raise SandboxStartError("no template could start: test")

    box = Broken(SandboxConfig(workers=1))
    app = create_app(settings_for(), sandbox=box, search_provider=FakeSearchProvider())
    served = False
    with pytest.raises(SandboxStartError, match="test"):
        async with app.router.lifespan_context(app):
            served = True
    assert not served, "the app served without a sandbox"
    assert box.closed
