"""What ``python -m service`` imports before it serves: the cold start of the embedded model
(issue 12) has no room for libraries that only some servers use. The MCP SDK is imported on
the first ``/mcp`` request (service.mcp_door), Alembic when the schema is behind
(service.store), redis with a Redis limits store (service.admission)."""

from __future__ import annotations

import json
import subprocess
import sys

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
