"""A stand-in for ``llama_cpp.Llama`` and a harness that plugs it into ``LocalLLM``: the
embedded backend's plumbing, tested without llama-cpp or a model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from agents.llm.local import LoadedModel, LocalLLM, chatml


class FakeLlama:
    """Stands in for ``llama_cpp.Llama``: records calls and concurrency, and generates
    ``steps`` tokens, consulting ``stopping_criteria`` after each like llama-cpp does."""

    def __init__(
        self, *, text: str = "Thought: ok\nAction: finish[42]", steps: int = 3, delay: float = 0.0
    ) -> None:
        self.text = text
        self.steps = steps
        self.delay = delay
        self.calls: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self.generated: list[int] = []
        self.stopped_early = threading.Event()
        self.started = threading.Event()
        self.closed = False
        self.raise_exc: Exception | None = None
        self._guard = threading.Lock()

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        assert special and not add_bos
        return list(text)

    def create_completion(self, **kwargs: Any) -> dict[str, Any]:
        with self._guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.calls.append(kwargs)
        self.started.set()
        try:
            if self.raise_exc is not None:
                raise self.raise_exc
            produced = 0
            for _ in range(self.steps):
                if self.delay:
                    time.sleep(self.delay)
                produced += 1
                if kwargs["stopping_criteria"](None, None):
                    self.stopped_early.set()
                    break
            self.generated.append(produced)
            return {
                "choices": [{"text": self.text, "index": 0, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": len(kwargs["prompt"]),
                    "completion_tokens": produced,
                    "total_tokens": len(kwargs["prompt"]) + produced,
                },
            }
        finally:
            with self._guard:
                self.active -= 1

    def close(self) -> None:
        self.closed = True


class Harness:
    def __init__(self, llama: FakeLlama, *, n_ctx: int = 4096, **kwargs: Any) -> None:
        self.llama = llama
        self.loads = 0
        self.compiled: list[str] = []
        self.n_ctx = n_ctx
        self.llm = LocalLLM(Path("unused.gguf"), loader=self.load, **kwargs)

    def load(self) -> LoadedModel:
        self.loads += 1
        return LoadedModel(
            llama=self.llama, render=chatml, compile_grammar=self.compile, n_ctx=self.n_ctx
        )

    def compile(self, text: str) -> Any:
        if "bad" in text:
            raise ValueError("parse error at 1")
        self.compiled.append(text)
        return ("compiled", text)
