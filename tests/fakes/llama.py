"""A stand-in for ``llama_cpp.Llama`` and a harness that plugs it into ``LocalLLM``: the
embedded backend's plumbing, tested without llama-cpp or a model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from agents.llm.local import LoadedModel, LocalLLM, chatml
from agents.llm.warm_state import WarmState


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
        self.evaluated: tuple[int, ...] = ()  # the live context: the last prompt evaluated
        self.restored: list[tuple[int, ...]] = []
        self.refuse_states = False
        self._guard = threading.Lock()

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        assert special and not add_bos
        return list(text)

    def create_completion(self, **kwargs: Any) -> dict[str, Any]:
        with self._guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.calls.append(kwargs)
        self.evaluated = tuple(kwargs["prompt"])
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

    # What ``local._save_llama_state`` / ``_load_llama_state`` do with a real llama.
    def save_state(self) -> WarmState:
        return WarmState(self.evaluated, b"kv:" + bytes(t % 256 for t in self.evaluated))

    def load_state(self, state: WarmState) -> None:
        if self.refuse_states:
            raise RuntimeError("Failed to set llama state data")
        assert state.state == b"kv:" + bytes(t % 256 for t in state.tokens)
        self.evaluated = state.tokens
        self.restored.append(state.tokens)


class Harness:
    def __init__(
        self,
        llama: FakeLlama,
        *,
        n_ctx: int = 4096,
        model_id: str = "sha256:fake-model",
        **kwargs: Any,
    ) -> None:
        """``kwargs`` go to ``LocalLLM``: ``warm_dir`` turns the persisted states on."""
        self.llama = llama
        self.loads = 0
        self.compiled: list[str] = []
        self.n_ctx = n_ctx
        self.model_id = model_id
        self.llm = LocalLLM(Path("unused.gguf"), loader=self.load, **kwargs)

    def load(self) -> LoadedModel:
        self.loads += 1
        return LoadedModel(
            llama=self.llama,
            render=chatml,
            compile_grammar=self.compile,
            n_ctx=self.n_ctx,
            model_id=self.model_id,
            runtime="fake-llama 1.0",
            save_state=self.llama.save_state,
            load_state=self.llama.load_state,
        )

    def compile(self, text: str) -> Any:
        if "bad" in text:
            raise ValueError("parse error at 1")
        self.compiled.append(text)
        return ("compiled", text)
