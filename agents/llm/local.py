"""The embedded backend: a GGUF model run in-process by llama-cpp-python.

Used when ``LLM_BASE_URL`` is unset. What it guarantees:

- **Off the event loop, one generation at a time.** Every llama call runs on one dedicated
  worker thread (a single-thread executor), and ``complete()`` holds an ``asyncio.Lock`` while
  its generation is in flight. On 2 cores two concurrent generations fell from ~24 to ~1
  token/s, so callers that draw several samples (``supports_n`` is False) are served in turn.
- **Cancellation.** A thread cannot be killed, so each generation carries a flag that
  llama-cpp's ``stopping_criteria`` checks after every token. When the awaiting task is
  cancelled (an ``asyncio.timeout`` deadline, a client gone), the flag is set and the lock is
  released; the worker stops within one token and the next queued call runs. The prompt's
  prefill (one batch of up to ``n_batch`` tokens) cannot be interrupted. ``max_generation_s``
  bounds a single generation on its own (``LLMTimeout``).
- **Prompt cache.** Messages are rendered with the chat template from the GGUF metadata and
  tokenized here. One ``Llama`` instance is kept, and llama-cpp reuses the KV cache for the
  longest token prefix shared with the previous call, so a byte-identical system prompt and
  few-shot prefix is evaluated once; only the question and later turns cost prefill. That
  covers one prefix; PAL and ReAct (and each PAL family) have different ones, so a
  ``LlamaRAMCache`` (``prompt_cache_bytes``, default 256 MiB; about 11 MB per saved state of a
  1,300-token prompt) keeps recent states and restores the one sharing the longest prefix:
  switching back to the PAL prompt after a ReAct call costs ~1 s instead of a full prefill.
  llama-cpp's unused logits buffer is shrunk first (see ``_shrink_scores``), or each saved
  state would also copy 311 MB.
- **Warm state on disk.** ``warm_up`` prefills the prompts the service will send first (PAL,
  ReAct over the default allow-list) and saves llama.cpp's state after each one to
  ``warm_dir`` (``<MODEL_CACHE_DIR>/warm``, see ``agents.llm.warm_state``), keyed by the model's
  hash, the prompt's tokens, llama-cpp-python's version and ``n_ctx`` (16 MB for the PAL
  prompt). At the next start a matching state is loaded (20-40 ms) and put in the prompt
  cache instead of a ~28 s prefill; a prompt without one (another allow-list, a new model) is
  prefilled in the background as before, then saved. ``python -m service warm`` saves them
  ahead (``make model`` runs it, and the Docker build).
- **Text protocol.** ``stop`` sequences are honoured (the template's end-of-turn is added),
  ``grammar`` (GBNF text, see ``agents.llm.grammar``) constrains sampling and is checked to
  compile first (llama.cpp would otherwise crash on a bad one), ``supports_tools`` is False,
  usage is the exact token counts, and each call draws a fresh seed (llama-cpp would otherwise
  reuse one, making every sample identical).
- **Loading.** Lazy, on the worker thread: the first ``check()`` or ``complete()`` assembles
  the packaged model if needed (``agents.llm.model_files``) and loads it (about a second for
  the 469 MB model, memory-mapped). The service awaits ``check()`` in its lifespan, so the
  model is ready before the first request; later ``check()`` calls return at once.
- **Errors** are ``LLMError`` subclasses: a missing ``local`` extra, a missing or non-GGUF
  file, or a failed load is ``LLMConfigError``; a prompt longer than the context is
  ``LLMBadResponse``; anything llama-cpp raises mid-generation is translated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import io
import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from agents.errors import LLMBadResponse, LLMConfigError, LLMError, LLMTimeout
from agents.llm.base import ChatMessage, Choice, Completion, ToolSpec, Usage
from agents.llm.model_files import DEFAULT_MODEL, get_spec, prepare_model
from agents.llm.warm_state import StateKey, WarmState, WarmStore, file_identity
from agents.paths import default_model_cache_dir

log = structlog.get_logger(__name__)

LLAMA_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
)
INSTALL_COMMAND = (
    f'make install-local  (or: CMAKE_ARGS="{LLAMA_CMAKE_ARGS}" pip install -e ".[local]")'
)
_GGUF_MAGIC = b"GGUF"
_MAX_CACHED_GRAMMARS = 64
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A chat rendered to the model's raw prompt, with the template's end-of-turn stops."""

    text: str
    stop: tuple[str, ...] = ()
    add_bos: bool = False


Renderer = Callable[[list[dict[str, str]]], RenderedPrompt]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """What the worker needs once the model is loaded. ``llama`` is a ``llama_cpp.Llama`` (or a
    test double with ``tokenize``, ``create_completion`` and ``close``); ``compile_grammar``
    turns GBNF text into what ``create_completion(grammar=...)`` takes, raising ``ValueError``
    when it does not compile."""

    llama: Any
    render: Renderer
    compile_grammar: Callable[[str], Any]
    n_ctx: int
    # What a saved state must have been made with (``agents.llm.warm_state.StateKey``), and how
    # to take the live state and restore one; without them nothing is persisted.
    model_id: str = ""
    runtime: str = ""
    save_state: Callable[[], WarmState] | None = None
    load_state: Callable[[WarmState], None] | None = None

    def state_key(self, tokens: Sequence[int]) -> StateKey:
        return StateKey.of(
            model=self.model_id, runtime=self.runtime, n_ctx=self.n_ctx, tokens=tokens
        )


Loader = Callable[[], LoadedModel]


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def chatml(messages: list[dict[str, str]]) -> RenderedPrompt:
    """ChatML, Qwen's format: the fallback for a GGUF without a chat template."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return RenderedPrompt(text + "<|im_start|>assistant\n", stop=("<|im_end|>",))


class LocalLLM:
    """An ``LLM`` over a GGUF file run by llama-cpp-python in this process."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        model_name: str | None = None,
        max_generation_s: float = 300.0,
        prompt_cache_bytes: int = 256 << 20,
        prepare: Callable[[], Path] | None = None,
        loader: Loader | None = None,
        model_id: str | None = None,
        warm_dir: Path | None = None,
        warm_dir_bytes: int = 256 << 20,
    ) -> None:
        """``prepare`` (run on the worker before loading) produces ``model_path``, e.g. by
        assembling the packaged model; ``loader`` replaces llama-cpp entirely (tests).
        ``model_id`` is the model file's SHA-256 when known (the packaged model's is pinned),
        else the file's identity is used (``warm_state.file_identity``); ``warm_dir`` is where
        warm states persist (none without it), at most ``warm_dir_bytes`` of them."""
        if n_ctx < 256:
            raise LLMConfigError(f"n_ctx must be at least 256, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise LLMConfigError(f"LOCAL_THREADS must be at least 1, got {n_threads}")
        if max_generation_s <= 0:
            raise LLMConfigError("max_generation_s must be positive")
        if prompt_cache_bytes < 0:
            raise LLMConfigError("prompt_cache_bytes must be >= 0 (0 disables it)")
        self._model_path = Path(model_path)
        self._name = model_name or self._model_path.stem
        self._n_ctx = n_ctx
        self._n_threads = n_threads or default_threads()
        self._max_generation_s = max_generation_s
        self._prompt_cache_bytes = prompt_cache_bytes
        self._prepare = prepare
        self._loader: Loader = loader or self._load_with_llama_cpp
        self._model_id = model_id
        self._warm_store = (
            WarmStore(warm_dir, max_bytes=warm_dir_bytes) if warm_dir is not None else None
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self._lock = asyncio.Lock()
        self._loaded: LoadedModel | None = None
        self._loading: Future[LoadedModel] | None = None
        self._grammars: dict[str, Any] = {}
        self._active: threading.Event | None = None
        self._closed = False
        self._last_used = time.monotonic()

    @classmethod
    def from_settings(
        cls,
        *,
        model: str = DEFAULT_MODEL,
        model_path: Path | None = None,
        cache_dir: Path | None = None,
        n_threads: int | None = None,
        n_ctx: int = 4096,
        max_generation_s: float = 300.0,
        prompt_cache_bytes: int = 256 << 20,
        warm_dir: Path | None = None,
    ) -> LocalLLM:
        """The backend the service builds when ``LLM_BASE_URL`` is unset.

        ``model_path`` (``LOCAL_MODEL_PATH``), when given, is used as is and the
        packaged model is skipped; otherwise ``model`` (``LOCAL_MODEL``: small | better) is
        assembled into ``cache_dir`` (``MODEL_CACHE_DIR``) on first use. No I/O happens here:
        an unknown model name fails at once, anything else at ``check()``. Warm states
        persist in ``warm_dir``, by default ``<cache_dir>/warm``.
        """
        name: str | None = None
        prepare: Callable[[], Path] | None = None
        model_id: str | None = None
        cache_dir = cache_dir or default_model_cache_dir()
        if model_path is not None:
            path = Path(model_path)
        else:
            spec = get_spec(model)
            path = cache_dir / spec.filename
            name = spec.filename.removesuffix(".gguf")
            prepare = functools.partial(prepare_model, spec.name, cache_dir)
            model_id = f"sha256:{spec.sha256}"  # prepare_model checks the file against it
        return cls(
            path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            model_name=name,
            max_generation_s=max_generation_s,
            prompt_cache_bytes=prompt_cache_bytes,
            prepare=prepare,
            model_id=model_id,
            warm_dir=warm_dir or cache_dir / "warm",
        )

    # -- the LLM protocol ------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._name

    @property
    def warm_dir(self) -> Path | None:
        """Where the warm states persist (``agents.llm.warm_state``), None when they do not."""
        return self._warm_store.directory if self._warm_store is not None else None

    @property
    def supports_n(self) -> bool:
        return False

    @property
    def supports_grammar(self) -> bool:
        return True

    @property
    def supports_tools(self) -> bool:
        return False

    @property
    def supports_prefill(self) -> bool:
        return True  # _tokenize: the prompt ends inside the assistant's turn

    @property
    def supports_warm_up(self) -> bool:
        return True

    def count_tokens(self, text: str) -> int | None:
        """``text``'s length in the model's own tokens, or None while the model is not loaded
        (or closed): counting never loads it, and the caller then estimates.

        It runs on the caller's thread, not on the worker: a count is needed before a run
        starts, and must not queue behind a generation that can take minutes. Tokenizing only
        reads the vocabulary (llama.cpp's own server tokenizes on its HTTP threads while the
        model generates). ``aclose`` marks the backend closed before it unloads, on the event
        loop, so a count made there never meets an unloaded model. Special tokens are parsed
        as when a prompt is tokenized (``_tokenize``)."""
        loaded = self._loaded
        if loaded is None or self._closed:
            return None
        try:
            tokens = loaded.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        except Exception:  # a count is an optimisation: the caller estimates instead
            return None
        return len(tokens)

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        max_tokens: int = 512,
        n: int = 1,
        tools: Sequence[ToolSpec] = (),
        grammar: str | None = None,
        response_schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One completion (``n`` is ignored: callers draw more samples concurrently). A
        ``response_schema`` without a ``grammar`` becomes one (``schema_grammar``)."""
        if response_schema is not None and grammar is None:
            grammar = schema_grammar(response_schema)
        if n < 1:
            raise LLMError(f"n must be >= 1, got {n}")
        if max_tokens < 1:
            raise LLMError(f"max_tokens must be >= 1, got {max_tokens}")
        if not messages:
            raise LLMError("no messages to complete")
        request = _Request(
            chat=[_to_template_message(m) for m in messages],
            stop=tuple(dict.fromkeys(s for s in stop if s)),
            temperature=max(temperature, 0.0),
            max_tokens=max_tokens,
            grammar=grammar,
            seed=random.getrandbits(32),
            cancel=threading.Event(),
        )
        try:
            return await self._submit(request)
        finally:
            self._last_used = time.monotonic()  # a request's, not the warm-up's: see warm_up

    async def _submit(self, request: _Request) -> Completion:
        async with self._lock:
            if self._closed:
                raise LLMError("the local model has been closed")
            loop = asyncio.get_running_loop()
            self._active = request.cancel
            try:
                return await loop.run_in_executor(self._executor, self._generate, request)
            except asyncio.CancelledError:
                # The worker cannot be interrupted; tell it to stop at the next token. The
                # next call queues behind it on the single worker thread.
                request.cancel.set()
                raise
            finally:
                self._active = None

    async def warm_up(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        chunk_tokens: int = 128,
        quiet_s: float = 0.5,
        max_wait_s: float = 600.0,
    ) -> int:
        """Prefill each conversation so that the prompt cache holds it; returns how many were.

        First, at once, the conversations whose state was saved (``warm_dir``) are restored
        from it: tens of milliseconds each, so the first answer is a warm one. The rest are
        prefilled, and their states saved after.

        A cold few-shot prompt costs ~28 s of prefill on 2 cores, and a prefill cannot be
        interrupted. So the prompt is evaluated ``chunk_tokens`` at a time, one short call
        each, and every chunk waits until no generation has run for ``quiet_s``: a request
        that arrives meanwhile waits for one chunk (~2 s), not for the whole prompt; then the
        warm-up resumes where it stopped (llama-cpp keeps the longest evaluated prefix, and
        its RAM cache brings it back after the request). A conversation that cannot go on
        within ``max_wait_s`` is left. ``LLMError`` propagates.
        """
        if chunk_tokens < 1:
            raise LLMError("chunk_tokens must be >= 1")
        chats = [[_to_template_message(m) for m in messages] for messages in conversations]
        restored = await self._run(functools.partial(self._restore_warm_states, chats))
        warmed = sum(1 for total in restored if total is None)
        for chat, total in zip(chats, restored, strict=True):
            if total is None:
                continue
            for upto in [*range(chunk_tokens, total, chunk_tokens), total]:
                if not await self._wait_until_idle(quiet_s, max_wait_s):
                    return warmed
                request = _Request(
                    chat=chat,
                    stop=(),
                    temperature=0.0,
                    max_tokens=1,
                    grammar=None,
                    seed=0,
                    cancel=threading.Event(),
                    prefix_tokens=upto,
                    persist=upto == total,
                )
                await self._submit(request)
            warmed += 1
        return warmed

    async def restore_saved(self, conversations: Sequence[Sequence[ChatMessage]]) -> int:
        """Restore the saved states of ``conversations``, prefilling none; how many were."""
        chats = [[_to_template_message(m) for m in messages] for messages in conversations]
        restored = await self._run(functools.partial(self._restore_warm_states, chats))
        return sum(1 for total in restored if total is None)

    async def _wait_until_idle(self, quiet_s: float, max_wait_s: float) -> bool:
        deadline = time.monotonic() + max_wait_s
        while self._lock.locked() or time.monotonic() - self._last_used < quiet_s:
            if time.monotonic() > deadline or self._closed:
                return False
            await asyncio.sleep(min(quiet_s, 0.25) or 0.01)
        return not self._closed

    async def _run(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` on the model's worker thread, after any generation in progress."""
        async with self._lock:
            if self._closed:
                raise LLMError("the local model has been closed")
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def start_loading(self) -> None:
        """Begin loading the model on its own thread and return at once, so that loading
        overlaps what the caller does next (``python -m service`` imports the app meanwhile);
        :meth:`check` waits for it, and gets its error."""
        if self._loading is None and self._loaded is None and not self._closed:
            self._loading = self._executor.submit(self._ensure_loaded)

    async def check(self) -> None:
        """Load (and, for the packaged model, assemble) the model if not done yet."""
        if self._loaded is not None:
            return
        if self._closed:
            raise LLMConfigError("the local model has been closed")
        if self._loading is not None:  # start_loading's: once (a failed load is tried again)
            loading, self._loading = self._loading, None
            await asyncio.wrap_future(loading)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._ensure_loaded)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._active is not None:
            self._active.set()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._unload)
        finally:
            self._executor.shutdown(wait=False)

    # -- the worker thread -----------------------------------------------------------------

    def _ensure_loaded(self) -> LoadedModel:
        if self._loaded is None:
            try:
                self._loaded = self._loader()
            except LLMError:
                raise
            except Exception as exc:
                raise LLMConfigError(f"cannot load the local model {self._name}: {exc}") from exc
        return self._loaded

    def _unload(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            close = getattr(loaded.llama, "close", None)
            if callable(close):
                close()

    def _generate(self, request: _Request) -> Completion:
        if request.cancel.is_set():  # cancelled while queued: nobody awaits the result
            return Completion(choices=())
        model = self._ensure_loaded()
        rendered, tokens = self._tokenize(model, request.chat)
        if request.prefix_tokens is not None:
            tokens = tokens[: request.prefix_tokens]
        if len(tokens) >= model.n_ctx:
            raise LLMBadResponse(
                f"the prompt is {len(tokens)} tokens; the local model's context holds "
                f"{model.n_ctx}: shorten the conversation or raise n_ctx"
            )
        compiled = self._compiled_grammar(model, request.grammar) if request.grammar else None

        deadline = time.monotonic() + self._max_generation_s
        timed_out = False

        def should_stop(_input_ids: Any, _logits: Any) -> bool:
            nonlocal timed_out
            if request.cancel.is_set():
                return True
            if time.monotonic() > deadline:
                timed_out = True
                return True
            return False

        try:
            raw = model.llama.create_completion(
                prompt=tokens,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stop=list(dict.fromkeys((*request.stop, *rendered.stop))),
                seed=request.seed,
                grammar=compiled,
                stopping_criteria=should_stop,
            )
        except ValueError as exc:
            raise LLMBadResponse(f"the local model refused the request: {exc}") from exc
        except Exception as exc:
            raise LLMError(f"the local model failed: {exc}") from exc
        if timed_out:
            raise LLMTimeout(f"the local model generated for over {self._max_generation_s:g} s")
        if request.persist:
            self._save_warm_state(model, tokens)
        return _to_completion(raw)

    def _restore_warm_states(self, chats: list[list[dict[str, str]]]) -> list[int | None]:
        """For each chat, None when its saved state was restored, else its length in tokens
        (it is still to be prefilled). The first chat is restored last, so that it is the live
        one: the first request (PAL) then needs no state switch."""
        model = self._ensure_loaded()
        prompts = [self._tokenize(model, chat)[1] for chat in chats]
        result: list[int | None] = [len(tokens) for tokens in prompts]
        if self._warm_store is None or model.load_state is None:
            return result
        for index in reversed(range(len(prompts))):
            tokens = prompts[index]
            saved = self._warm_store.load(model.state_key(tokens), tokens)
            if saved is None:
                continue
            started = time.monotonic()
            try:
                model.load_state(saved)
            except Exception as exc:  # a state llama.cpp refuses is a prefill, not a failure
                log.warning("warm state ignored", reason=f"llama.cpp refused it: {exc}")
                continue
            log.info(
                "warm state restored",
                tokens=len(tokens),
                ms=round((time.monotonic() - started) * 1000),
            )
            result[index] = None
        return result

    def _save_warm_state(self, model: LoadedModel, tokens: list[int]) -> None:
        if self._warm_store is None or model.save_state is None:
            return
        try:
            state = model.save_state()
        except Exception as exc:  # persistence is an optimisation: the answer stands
            log.warning("warm state not saved", reason=f"llama.cpp: {exc}")
            return
        if list(state.tokens) != tokens:
            log.warning("warm state not saved", reason="the live state is not the prompt's")
            return
        self._warm_store.save(model.state_key(tokens), state)

    def _tokenize(
        self, model: LoadedModel, chat: list[dict[str, str]]
    ) -> tuple[RenderedPrompt, list[int]]:
        if chat and chat[-1]["role"] == "assistant":  # continued, not answered (prefill)
            start = model.render(chat[:-1])
            rendered = RenderedPrompt(start.text + chat[-1]["content"], start.stop, start.add_bos)
        else:
            rendered = model.render(chat)
        try:
            tokens = model.llama.tokenize(
                rendered.text.encode("utf-8"), add_bos=rendered.add_bos, special=True
            )
        except Exception as exc:
            raise LLMError(f"the local model could not tokenize the prompt: {exc}") from exc
        return rendered, list(tokens)

    def _compiled_grammar(self, model: LoadedModel, text: str) -> Any:
        compiled = self._grammars.get(text)
        if compiled is None:
            try:
                compiled = model.compile_grammar(text)
            except ValueError as exc:
                raise LLMError(f"the GBNF grammar does not compile: {exc}") from exc
            if len(self._grammars) >= _MAX_CACHED_GRAMMARS:
                self._grammars.clear()
            self._grammars[text] = compiled
        return compiled

    def _load_with_llama_cpp(self) -> LoadedModel:
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
            from llama_cpp.llama_cache import LlamaRAMCache
        except ImportError:
            raise LLMConfigError(
                "the embedded model needs the `local` extra (llama-cpp-python), which is not "
                f"installed: run {INSTALL_COMMAND}; or set LLM_BASE_URL to use a server"
            ) from None
        path = self._prepare() if self._prepare is not None else self._model_path
        _check_gguf(path)
        _bound_heap()
        _route_llama_logs(llama_cpp)
        try:
            # verbose=False would point the process's stdout and stderr at /dev/null while the
            # model loads, and with them the log lines of everything that runs meanwhile (the
            # model loads as the server starts: service.__main__). Its C logs go through
            # _route_llama_logs instead, and its Python prints, about the model's metadata,
            # are dropped here.
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self._n_ctx,
                    n_threads=self._n_threads,
                    n_threads_batch=self._n_threads,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMConfigError(f"llama.cpp cannot load {path}: {exc}") from exc
        llama.verbose = False  # no timings printed per completion
        if self._prompt_cache_bytes or self._warm_store is not None:
            _shrink_scores(llama)
        if self._prompt_cache_bytes:
            llama.set_cache(LlamaRAMCache(capacity_bytes=self._prompt_cache_bytes))
        return LoadedModel(
            llama=llama,
            render=_template_renderer(llama, llama_chat_format),
            compile_grammar=functools.partial(_compile_grammar, llama_cpp, llama),
            n_ctx=llama.n_ctx(),
            model_id=self._model_id or file_identity(path),
            runtime=f"llama-cpp-python {llama_cpp.__version__}",
            save_state=functools.partial(_save_llama_state, llama),
            load_state=functools.partial(_load_llama_state, llama),
        )


@dataclass(frozen=True, slots=True)
class _Request:
    chat: list[dict[str, str]]
    stop: tuple[str, ...]
    temperature: float
    max_tokens: int
    grammar: str | None
    seed: int
    cancel: threading.Event
    prefix_tokens: int | None = None  # evaluate only this many prompt tokens (warm-up)
    persist: bool = False  # save the state after the prompt to the warm store (warm-up)


def _to_template_message(message: ChatMessage) -> dict[str, str]:
    # No native tools here (supports_tools is False): a stray tool result is shown as user text.
    role = "user" if message.role == "tool" else message.role
    return {"role": role, "content": message.content}


def schema_grammar(schema: Mapping[str, Any]) -> str:
    """A JSON schema as GBNF, by llama-cpp-python's own converter (what its server does with
    ``response_format``)."""
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:
        raise LLMConfigError(
            f"the embedded model needs the `local` extra (llama-cpp-python): run {INSTALL_COMMAND}"
        ) from None
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except (ValueError, KeyError, TypeError) as exc:
        raise LLMError(f"the JSON schema cannot be turned into a grammar: {exc}") from exc


def _check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise LLMConfigError(
            f"no model file at {path}: set LOCAL_MODEL_PATH to a GGUF file, or unset it to "
            "use the packaged model"
        ) from None
    except OSError as exc:
        raise LLMConfigError(f"cannot read the model file {path}: {exc}") from exc
    if magic != _GGUF_MAGIC:
        raise LLMConfigError(f"{path} is not a GGUF file (llama.cpp needs GGUF)")


def _template_renderer(llama: Any, llama_chat_format: Any) -> Renderer:
    """The chat template stored in the GGUF, as llama-cpp renders it; ChatML if none."""
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return chatml

    def token_text(token_id: int) -> str:
        return "" if token_id == -1 else str(llama._model.token_get_text(token_id))

    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=token_text(llama.token_eos()),
        bos_token=token_text(llama.token_bos()),
        add_generation_prompt=True,
    )

    def render(messages: list[dict[str, str]]) -> RenderedPrompt:
        result = formatter(messages=messages)
        stops = result.stop if isinstance(result.stop, list) else [result.stop]
        return RenderedPrompt(
            text=result.prompt,
            stop=tuple(s for s in stops if s),
            add_bos=not result.added_special,
        )

    return render


def _shrink_scores(llama: Any) -> None:
    """Make llama-cpp's logits buffer one row instead of ``n_batch`` rows.

    Without ``logits_all`` (we never ask for logprobs) llama-cpp 0.3.x keeps an unused
    ``n_batch x n_vocab`` float array (512 x 151,936 = 311 MB for Qwen), and every state the
    RAM cache saves copies it (outside the cache's byte accounting): four cached states took
    the process from 0.7 to 2.2 GB. Only the last row is ever read (``scores[-1]``), so one
    row keeps the behaviour; measured: 0.82 GB with the cache on.
    """
    scores = getattr(llama, "scores", None)
    if getattr(llama, "_logits_all", False) or scores is None or scores.shape[0] <= 1:
        return
    row = scores[:1].copy()
    row.fill(0.0)
    llama.scores = row


def _save_llama_state(llama: Any) -> WarmState:
    """The live context's evaluated tokens and llama.cpp state (the logits row is not kept:
    a restored state is always re-evaluated from its last token before sampling)."""
    state = llama.save_state()
    tokens = tuple(int(t) for t in state.input_ids[: state.n_tokens])
    return WarmState(tokens=tokens, state=bytes(state.llama_state[: state.llama_state_size]))


def _load_llama_state(llama: Any, warm: WarmState) -> None:
    """Make ``warm`` the live context and put it in the prompt cache, where a request with
    its prefix finds it after other prompts have replaced the live one. On failure the context
    is reset (an empty prompt), never left half-restored."""
    import numpy as np
    from llama_cpp.llama import LlamaState

    input_ids = np.zeros(llama.n_ctx(), dtype=np.intc)  # llama-cpp writes past n_tokens
    input_ids[: len(warm.tokens)] = warm.tokens
    state = LlamaState(
        input_ids=input_ids,
        scores=np.zeros((1, llama.n_vocab()), dtype=np.single),  # see _save_llama_state
        n_tokens=len(warm.tokens),
        llama_state=warm.state,
        llama_state_size=len(warm.state),
        seed=0,  # every request sets its own
    )
    try:
        llama.load_state(state)
    except Exception:
        llama.reset()
        raise
    if llama.cache is not None:
        llama.cache[warm.tokens] = state


def _compile_grammar(llama_cpp: Any, llama: Any, text: str) -> Any:
    """Check the grammar against the model's vocabulary before llama-cpp uses it: its sampler
    chain does not check, and a grammar that fails to parse would crash the process."""
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise ValueError("llama.cpp rejected it (see its log for the position)")
    llama_cpp.llama_sampler_free(sampler)
    return llama_cpp.LlamaGrammar.from_string(text, verbose=False)


def _to_completion(raw: Any) -> Completion:
    try:
        choice = raw["choices"][0]
        text = choice["text"]
        usage = raw.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        completion_tokens = int(usage.get("completion_tokens", 0))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise LLMBadResponse(f"the local model returned an unexpected result: {exc!r}") from exc
    if not isinstance(text, str):
        raise LLMBadResponse("the local model returned a non-text completion")
    return Completion(
        choices=(Choice(text=text, finish_reason=choice.get("finish_reason")),),
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
    )


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_HEAP_THRESHOLD = 1 << 20


_LLAMA_LOG_ERROR = 4  # ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT (ggml.h)
_log_callback: Any = None  # the C callback, kept alive for as long as llama.cpp may call it


def _route_llama_logs(llama_cpp: Any) -> None:
    """llama.cpp's own log lines: its errors into ours, the rest (per-layer loading, timings)
    dropped. Set once per process, before the first model loads."""
    global _log_callback
    if _log_callback is not None:
        return

    def forward(level: int, text: bytes, _user_data: Any) -> None:
        if level == _LLAMA_LOG_ERROR:
            log.warning("llama.cpp", message=text.decode("utf-8", "replace").strip())

    _log_callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def _bound_heap() -> None:
    """Allocations of 1 MiB and more get their own mapping, returned to the system when freed.

    The prompt cache saves and restores llama.cpp states of ~11 MB each. glibc raises its
    mmap threshold to the size of the last such block it freed, after which they come from
    the heap and fragment it: measured in the image, RSS crept from 1.19 to 1.31 GB over 80
    runs and did not come back. With a fixed threshold it stays at 1.06-1.10 GB (the numbers
    are in the README). A no-op where glibc is not the C library."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _HEAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, _HEAP_THRESHOLD)
