"""A streamed PAL run through the real ASGI app sends each sample's step as the sample ends.

Issue: a PAL stream sent nothing but pings until every sample was done (~100 s for 3 with
the embedded model). Here one of two samples is held at a gate inside the (real) sandbox; the
first ``observation`` event must reach the client while it is still held.

httpx2's ``ASGITransport`` collects the whole body before it returns a response, so it cannot
show when an event left the app. ``post_stream`` calls the ASGI app itself and hands each
body chunk over as the app sends it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from service.app import create_app
from service.settings import Settings
from tests.fakes import FakeOpenAI, make_llm
from tests.fakes.search import FakeSearchProvider
from tools.sandbox import Sandbox, SandboxConfig
from tools.sandbox.result import ExecutionResult

GUARD_S = 10.0  # turns a regression (waiting for the gate forever) into a failure
SLOW = "```python\ndef solution():\n    return 111\n```"
FAST = "```python\ndef solution():\n    return 222\n```"


class GatedSandbox(Sandbox):
    """The real sandbox, except that a program containing ``marker`` waits for ``gate``."""

    def __init__(self, config: SandboxConfig, marker: str) -> None:
        super().__init__(config)
        self.marker = marker
        self.gate = asyncio.Event()
        self.blocked = 0  # gated runs waiting now

    async def run(self, code: str, timeout_s: float | None = None) -> ExecutionResult:
        if self.marker in code:
            self.blocked += 1
            try:
                await self.gate.wait()
            finally:
                self.blocked -= 1
        return await super().run(code, timeout_s)


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: dict[str, Any]


class EventStream:
    """The server-sent events of one response, read as the app sends them."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: asyncio.Queue[str | None] = asyncio.Queue()  # None: the body ended
        self._text = ""

    async def next(self) -> Event:
        """The next named event (keep-alive comments skipped); ``EOFError`` at the end."""
        while True:
            while "\n\n" not in self._text:
                chunk = await self.chunks.get()
                if chunk is None:
                    raise EOFError("the stream ended")
                self._text = (self._text + chunk).replace("\r\n", "\n")
            block, self._text = self._text.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in fields:
                return Event(fields["event"], json.loads(fields.get("data", "null")))

    async def until(self, name: str) -> list[Event]:
        """The events up to and including the next one called ``name``."""
        seen = [await self.next()]
        while seen[-1].name != name:
            seen.append(await self.next())
        return seen


@asynccontextmanager
async def post_stream(app: Any, path: str, payload: dict[str, Any]) -> AsyncIterator[EventStream]:
    """POST ``payload`` to ``app`` over raw ASGI; leaving the block hangs up, as a client
    that goes away does, and waits for the app to finish."""
    body = json.dumps(payload).encode()
    stream = EventStream()
    hung_up = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            stream.status = message["status"]
            stream.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            stream.chunks.put_nowait(message.get("body", b"").decode())
            if not message.get("more_body", False):
                stream.chunks.put_nowait(None)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),  # a server without keys answers its own names
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "server": ("test", 80),
        "client": ("127.0.0.1", 50000),
    }
    task = asyncio.create_task(app(scope, receive, send))
    try:
        yield stream
    finally:
        hung_up.set()
        try:
            async with asyncio.timeout(GUARD_S):
                await task
        finally:
            task.cancel()


async def test_first_observation_arrives_while_the_other_sample_is_blocked(
    settings_for: Callable[..., Settings],
) -> None:
    # The greedy sample (temperature 0) is the slow one; the other is drawn on its own.
    fake = FakeOpenAI(lambda req: SLOW if req.temperature == 0.0 else FAST)
    sandbox = GatedSandbox(SandboxConfig(workers=2, timeout_s=3.0), marker="111")
    app = create_app(
        settings_for(),
        llm=make_llm(fake),
        sandbox=sandbox,
        search_provider=FakeSearchProvider(),
    )
    payload = {"question": "How many?", "mode": "pal", "samples": 2, "stream": True}

    async with app.router.lifespan_context(app), post_stream(app, "/ask", payload) as stream:
        async with asyncio.timeout(GUARD_S):
            first = await stream.until("observation")
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert [e.name for e in first] == ["run", "action", "observation"]
        assert first[-1].data["step"] == 1 and "222" in first[-1].data["observation"]
        assert sandbox.blocked == 1  # the other sample is still held in the sandbox

        sandbox.gate.set()
        async with asyncio.timeout(GUARD_S):
            rest = await stream.until("final")

    assert [e.name for e in rest] == ["action", "observation", "final"]
    assert rest[1].data["step"] == 2 and "111" in rest[1].data["observation"]
    final = rest[-1].data
    assert final["status"] == "finished" and final["answer"] == "111"  # the tie: the greedy one
    assert [s["action_input"] for s in final["steps"]] == [
        "def solution():\n    return 222\n",
        "def solution():\n    return 111\n",
    ]
    assert fake.calls == 2 and all(r.n == 1 for r in fake.chat_requests)
