"""The web playground through the real ASGI app: where it is served, with which types and
Content-Security-Policy, that it loads nothing from elsewhere, and that it is public while
the API it calls is not. (A real browser drives it in ``test_playground_browser.py``.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.fakes import FakeOpenAI
from tests.service.conftest import AppFactory

KEY = "playground-key-0123456789"
HTML = "text/html"
ASSETS = {
    "/ui": "text/html; charset=utf-8",
    "/ui/playground.js": "text/javascript; charset=utf-8",
    "/ui/playground.css": "text/css; charset=utf-8",
    "/ui/icon.svg": "image/svg+xml",
    "/ui/thumb.svg": "image/svg+xml",
}
# What a strict policy must say: nothing from elsewhere, no inline script or style, no HTML
# made from strings (Trusted Types).
POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
)


class _References(HTMLParser):
    """Every URL a page loads (script src, link href, img src) and every inline script,
    style attribute and event handler it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name) and (tag != "a" or name != "href"):
                self.urls.append(values[name] or "")
        self.inline.extend(f"<{tag} {name}>" for name, _ in attrs if name.startswith("on"))
        if "style" in values:
            self.inline.append(f"<{tag} style>")
        if tag == "style":
            self.inline.append("<style>")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"<script>{data.strip()[:40]}")


async def test_a_browser_asking_for_the_root_is_sent_to_the_playground(
    app_client: AppFactory,
) -> None:
    async with app_client(FakeOpenAI()) as client:
        browser = await client.get("/", headers={"accept": "text/html,*/*;q=0.8"})
        assert browser.status_code == 307
        assert browser.headers["location"] == "/ui"
        # A script (no HTML in its Accept) still gets the JSON index it always got.
        script = await client.get("/", headers={"accept": "application/json"})
        assert script.status_code == 200 and script.json()["docs"] == "/docs"


async def test_the_page_and_its_files_are_served_with_their_types_and_a_strict_policy(
    app_client: AppFactory,
) -> None:
    async with app_client(FakeOpenAI()) as client:
        for path, content_type in ASSETS.items():
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"] == content_type, path
            assert response.headers["x-content-type-options"] == "nosniff", path
            policy = response.headers["content-security-policy"]
            for directive in POLICY:
                assert directive in policy.split("; "), (path, directive)
            assert "unsafe" not in policy, path  # no 'unsafe-inline', no 'unsafe-eval'
            assert response.headers["x-request-id"]  # the middlewares still run
        assert (await client.get("/ui/nothing.js")).status_code == 404
        assert (await client.get("/ui/index.html")).status_code == 404  # the page is /ui


async def test_the_page_loads_only_its_own_files_and_no_inline_code(
    app_client: AppFactory,
) -> None:
    async with app_client(FakeOpenAI()) as client:
        page = (await client.get("/ui")).text
        found = _References()
        found.feed(page)
        assert found.inline == [], found.inline  # the policy would block them anyway
        assert set(found.urls) == {"/ui/icon.svg", "/ui/playground.css", "/ui/playground.js"}
        css = (await client.get("/ui/playground.css")).text
        css_urls = re.findall(r"url\(\"?([^\")]+)", css)
        assert css_urls == ["/ui/thumb.svg"]
        for url in [*found.urls, *css_urls]:
            assert not re.match(r"(?i)^([a-z]+:)?//", url), url  # same origin: a path only
            assert (await client.get(url)).status_code == 200, url
        script = (await client.get("/ui/playground.js")).text
        # Model text is set as textContent only; Trusted Types would stop these in a browser.
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in script, sink
        assert "http://" not in script and "https://" not in script


async def test_with_keys_the_page_needs_none_but_the_api_it_calls_does(
    app_client: AppFactory,
) -> None:
    async with app_client(FakeOpenAI(), agent_api_keys=KEY, max_samples=3) as client:
        for path in [*ASSETS, "/ui/config.json"]:
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/", headers={"accept": HTML})).status_code == 307
        config = (await client.get("/ui/config.json")).json()
        assert config == {"max_samples": 3, "max_question_chars": 4000}
        assert (await client.get("/actions")).status_code == 401
        assert (await client.get("/threads")).status_code == 401
        keyed = await client.get("/actions", headers={"authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200 and "python" in {a["name"] for a in keyed.json()}


async def test_the_playground_stays_out_of_the_api_reference(app_client: AppFactory) -> None:
    async with app_client(FakeOpenAI()) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert not [p for p in paths if p == "/" or p.startswith("/ui")], list(paths)
        assert "/ask" in paths and "/actions" in paths
        assert (await client.get("/docs")).status_code == 200
