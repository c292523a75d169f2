"""Builds the shared components from the settings: the LLM backend, the sandbox and the
action registry. The app's lifespan calls these for whatever a test did not inject."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agents.errors import LLMConfigError
from agents.llm.base import LLM
from service.settings import Settings
from tools.base import Tool
from tools.registry import ToolRegistry, load_langchain_tool
from tools.retrieve.tool import PassageIndex
from tools.sandbox import Sandbox
from tools.search.base import SearchProvider

if TYPE_CHECKING:
    from service.embeddings import Embedder


def build_llm(settings: Settings) -> LLM:
    if settings.llm_base_url:
        from agents.llm.openai_backend import OpenAILLM

        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return OpenAILLM(
            base_url=settings.llm_base_url,
            api_key=key,
            model=settings.llm_model,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
    try:
        from agents.llm.local import LocalLLM
    except ImportError as exc:  # pragma: no cover - the module itself has no hard deps
        raise LLMConfigError(f"the embedded model backend is unavailable: {exc}") from exc
    return LocalLLM.from_settings(
        model=settings.local_model,
        model_path=settings.local_model_path,
        cache_dir=settings.model_cache_dir,
        n_threads=settings.local_threads,  # None: the cores this process may use
    )


def build_search_provider(settings: Settings) -> SearchProvider:
    if settings.search_provider == "searxng":
        from tools.search.searxng import SearxngProvider

        assert settings.searxng_url is not None  # checked by Settings
        return SearxngProvider(settings.searxng_url, timeout_s=settings.search_timeout_s)
    from tools.search.duckduckgo import DuckDuckGoProvider

    return DuckDuckGoProvider(timeout_s=settings.search_timeout_s)


def build_embedder(settings: Settings) -> Embedder | None:
    """The embeddings model of ``EMBEDDINGS_BASE_URL``, or None (BM25 alone)."""
    if settings.embeddings_base_url is None:
        return None
    from service.embeddings import Embedder

    key = settings.embeddings_api_key
    return Embedder(
        settings.embeddings_base_url,
        settings.embeddings_model,
        api_key=key.get_secret_value() if key else None,
        timeout_s=settings.embeddings_timeout_s,
        batch=settings.embeddings_batch,
    )


def build_tools(
    settings: Settings,
    sandbox: Sandbox,
    search_provider: SearchProvider,
    remote: Iterable[Tool] = (),
    passages: PassageIndex | None = None,
) -> ToolRegistry:
    """The actions: python, search, retrieve (over ``passages``, the collections' index;
    without one a run cannot be given collections), ``EXTRA_TOOLS`` and ``remote`` (MCP
    servers' tools)."""
    from tools.python_tool import PythonTool
    from tools.retrieve.tool import RetrieveAction
    from tools.search.tool import SearchTool

    registry = ToolRegistry()
    registry.register(PythonTool(sandbox))
    registry.register(
        SearchTool(
            search_provider,
            max_results=settings.search_max_results,
            min_interval_s=settings.search_min_interval_s,
        )
    )
    registry.register(RetrieveAction(passages, top_k=settings.retrieve_top_k))
    for spec in settings.extra_tools:
        registry.register(load_langchain_tool(spec))
    for tool in remote:
        registry.register(tool)
    unknown = set(settings.allowed_actions) - set(registry.names()) - {"finish"}
    if unknown:
        raise ValueError(
            f"ALLOWED_ACTIONS names unknown actions: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(registry.names())}, finish)"
        )
    return registry
