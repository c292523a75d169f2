"""The scripted OpenAI-compatible model of ``bench/load.py``: fast enough never to be the limit.

A raw asyncio HTTP/1.1 server (keep-alive, no framework): ``GET …/models`` lists one model and
``POST …/chat/completions`` answers a ReAct step. A question carries its case as
``load-case A B``; the model then takes three ``python`` steps, ``print(A * B + k)`` for
k = 0, 1, 2, and finishes with ``A * B + 2``. A step counts as done when the conversation shows
it followed by its correct observation, so a step whose observation went wrong (the sandbox
busy) is asked again, with a comment that makes its input new (the service refuses a repeated
input). Every reply waits ``delay_ms`` first (a timer, not a sleeping thread); a ``fault_rate``
fraction of calls answers HTTP 500 (the service retries it) or a garbled step (an action that
does not exist: the service shows the model an observation saying so and the run goes on),
half each.

``python bench/load_llm.py --fd N`` serves on an inherited listening socket; several such
processes may share one socket. Never used by the service itself: a benchmark's stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import socket
import time
import uuid
from typing import Any, Final

CASE: Final = re.compile(r"load-case (\d+) (\d+)")
PYTHON_STEPS: Final = 3
_STEP: Final = re.compile(r"Action: python\[print\((\d+) \* (\d+) \+ (\d+)\)(?:  # again \d+)?\]")
_HEAD_END: Final = b"\r\n\r\n"
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


def question(a: int, b: int) -> str:
    return f"load-case {a} {b}: what is {a} times {b}, plus 2?"


def answer(a: int, b: int) -> str:
    return str(a * b + PYTHON_STEPS - 1)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def next_step(messages: list[dict[str, Any]]) -> str:
    """The step a model following the script writes next in this conversation."""
    texts = [(str(m.get("role")), _text(m.get("content"))) for m in messages]
    case = next(
        (CASE.search(t) for r, t in reversed(texts) if r == "user" and CASE.search(t)), None
    )
    if case is None:
        return "Thought: This is not a load-test question.\nAction: finish[unscripted]"
    a, b = int(case.group(1)), int(case.group(2))
    done: set[int] = set()
    tries = [0] * PYTHON_STEPS
    for i, (role, text) in enumerate(texts):
        step = _STEP.search(text) if role == "assistant" else None
        if step is None or (int(step.group(1)), int(step.group(2))) != (a, b):
            continue
        k = int(step.group(3))
        if k < PYTHON_STEPS:
            tries[k] += 1
            seen = texts[i + 1][1].strip() if i + 1 < len(texts) else ""
            if seen == f"Observation: {a * b + k}":
                done.add(k)
    todo = [k for k in range(PYTHON_STEPS) if k not in done]
    if not todo:
        return f"Thought: The answer is {answer(a, b)}.\nAction: finish[{answer(a, b)}]"
    k = todo[0]
    again = f"  # again {tries[k]}" if tries[k] else ""
    program = f"print({a} * {b} + {k}){again}"
    return f"Thought: Step {k + 1}: I compute with Python.\nAction: python[{program}]"


def garbled(messages: list[dict[str, Any]]) -> str:
    """A step naming an action that does not exist: never run, the run goes on."""
    return (
        next_step(messages)
        .replace("Action: python[", "Action: pyth0n{")
        .replace("Action: finish[", "Action: f1nish{")
    )


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    prompt_chars = sum(len(_text(m.get("content"))) for m in body.get("messages") or [])
    usage = {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(text) // 4 + 1}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    n = int(body.get("n") or 1)
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:16],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or "scripted"),
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            for i in range(n)
        ],
        "usage": usage,
    }


class Script:
    """What the scripted model answers; ``delay_s`` is how long before it does."""

    def __init__(self, delay_ms: float, fault_rate: float, seed: int | None = None) -> None:
        self.delay_s = delay_ms / 1000
        self.fault_rate = fault_rate
        self._random = random.Random(seed)

    def answer(self, method: str, path: str, raw: bytes) -> tuple[int, bytes, float]:
        """(status, JSON body, delay in seconds) for one request."""
        if method == "GET" and path.rstrip("/").endswith("/models"):
            models = {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
            return 200, json.dumps(models).encode(), 0.0
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, b'{"error": {"message": "not found"}}', 0.0
        try:
            body = json.loads(raw)
            messages = list(body["messages"])
        except (ValueError, KeyError, TypeError):
            return 400, b'{"error": {"message": "not a chat request"}}', 0.0
        roll = self._random.random()
        if roll < self.fault_rate / 2:
            error = {"error": {"message": "injected fault", "type": "server_error"}}
            return 500, json.dumps(error).encode(), self.delay_s
        text = garbled(messages) if roll < self.fault_rate else next_step(messages)
        return 200, json.dumps(_completion(body, text)).encode(), self.delay_s


class _Connection(asyncio.Protocol):
    """One keep-alive connection: requests are answered in order, each after its delay."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._buffer = bytearray()
        self._busy = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _next(self) -> None:
        if self._busy or self._transport is None:
            return
        end = self._buffer.find(_HEAD_END)
        if end < 0:
            return
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if len(self._buffer) < end + 4 + length:
            return
        raw = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        status, payload, delay = self._script.answer(method, path.split("?", 1)[0], raw)
        keep_alive = headers.get("connection", "").lower() != "close"
        self._busy = True
        asyncio.get_running_loop().call_later(delay, self._respond, status, payload, keep_alive)

    def _respond(self, status: int, payload: bytes, keep_alive: bool) -> None:
        self._busy = False
        if self._transport is None or self._transport.is_closing():
            return
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
            f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        self._transport.write(head.encode() + payload)
        if not keep_alive:
            self._transport.close()
            return
        self._next()


async def serve(sock: socket.socket, script: Script) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(script), sock=sock, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(False)
    asyncio.run(serve(sock, Script(args.delay_ms, args.fault_rate)))


if __name__ == "__main__":
    main()
