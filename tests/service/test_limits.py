"""The body limit when the body is read only after the response has started."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from service.limits import BodySizeLimit


async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
    """As sse-starlette does: the stream starts, then a task listens for the disconnect,
    which reads the request's body (a GET's, here oversized)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"event: run\n\n", "more_body": True})
    await receive()
    await send({"type": "http.response.body", "body": b"never", "more_body": False})


async def test_a_body_past_the_limit_read_mid_stream_ends_the_stream() -> None:
    """Red-team pass EY: a GET on a stream with a 1.3 MB body: the middleware sent a 413's
    start after the stream's (ASGI's RuntimeError, a reset connection, a traceback). Now the
    stream ends there, with what it had sent."""
    sent: list[Message] = []
    arrived = iter([{"type": "http.request", "body": b"x" * 2000, "more_body": True}])

    async def receive() -> Message:
        return next(arrived, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/runs/x/events", "headers": []}
    await BodySizeLimit(streaming_app, max_bytes=1000)(scope, receive, send)
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    assert sent[0]["status"] == 200
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_body_past_the_limit_before_the_response_is_a_413() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"x" * 2000, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/ask", "headers": []}
    await BodySizeLimit(app, max_bytes=1000)(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
