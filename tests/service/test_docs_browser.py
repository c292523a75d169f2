"""``/docs`` and ``/redoc`` in a real browser with no network: headless Chromium renders the
pages served by a real uvicorn (with API keys set, so the pages must load without one), and
every request it makes beyond loopback goes to a recording proxy that answers none of them.
A page that needed a CDN would render no operations, and its request would be on record.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it). Without
it these tests fail rather than skip: the docs would be unchecked.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.live import Service, serve

KEY = "docs-test-key-0123456789"
# Chromium talks to these for its own sake (time, updates, accounts, autofill), whatever page
# it shows; everything else a page asks for is the page's.
BROWSER_OWN = (".google.com", ".gvt1.com")
BROWSER_OWN_APIS = ("update.", "optimizationguide-pa.", "content-autofill.", "safebrowsing")


def _page_request(host: str) -> bool:
    if host.endswith(BROWSER_OWN):
        return False
    return not (host.endswith(".googleapis.com") and host.startswith(BROWSER_OWN_APIS))


class RecordingProxy:
    """An HTTP proxy that writes down the host of every request and serves none."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.hosts: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    continue
                parts = first.split()
                if len(parts) >= 2:  # "CONNECT host:443 HTTP/1.1" or "GET http://host/… …"
                    target = parts[1].removeprefix("http://").removeprefix("https://")
                    self.hosts.append(target.split("/", 1)[0].rsplit(":", 1)[0])

    def close(self) -> None:
        self._sock.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("docs")
    # No LLM answers on port 9: the docs must not depend on the backends.
    with serve(workdir, llm_url="http://127.0.0.1:9/v1", AGENT_API_KEYS=KEY) as running:
        yield running


def render(url: str, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the hosts it asked for beyond loopback."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is needed for the docs tests: apt-get install chromium"
    proxy = RecordingProxy()
    try:
        done = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-data-dir={profile}",
                f"--proxy-server={proxy.url}",  # loopback bypasses it; all else is recorded
                "--virtual-time-budget=20000",  # let the page fetch the schema and render
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [host for host in proxy.hosts if _page_request(host)]


def test_swagger_ui_renders_every_operation_offline(service: Service, tmp_path: Path) -> None:
    dom, requested = render(f"{service.base_url}/docs", tmp_path)
    assert requested == [], f"/docs asked the network for {requested}"
    for path in ("/ask", "/actions", "/runs/{run_id}", "/readyz"):
        assert f'data-path="{path}"' in dom, f"{path} not rendered:\n{dom[:3000]}"
    assert "Authorize" in dom  # the bearer scheme, declared since keys are set


def test_redoc_renders_every_operation_offline(service: Service, tmp_path: Path) -> None:
    dom, requested = render(f"{service.base_url}/redoc", tmp_path)
    assert requested == [], f"/redoc asked the network for {requested}"
    for operation in ("ask_ask_post", "actions_actions_get", "get_run_runs__run_id__get"):
        assert f"operation/{operation}" in dom, f"{operation} not rendered:\n{dom[:3000]}"


def test_the_api_itself_still_needs_the_key(service: Service) -> None:
    assert service.client.post("/ask", json={"question": "1+1"}).status_code == 401
    assert service.client.get("/docs").status_code == 200
