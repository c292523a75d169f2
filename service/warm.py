"""The embedded model's warm-up prompts, and ``python -m service warm``, which saves their states.

The server prefills these prompts at start-up (``service.app``), restoring each from its saved
state when there is one (``agents.llm.warm_state``): a state is found only for byte-identical
tokens, so the command builds the prompts with this same function, from the same settings
(the environment), and the states it saves are the ones the server looks for. The Docker image
runs it at build time; ``make model`` too, so the first ``make serve`` answers warm.

The tools are built as the server builds them, except MCP servers' tools, which are not
discovered here: with ``MCP_SERVERS`` on the allow-list the ReAct prompt differs, and the
server prefills and saves it at its first start instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from agents.factory import AgentFactory
from agents.llm.base import LLM, ChatMessage
from agents.llm.local import LocalLLM
from agents.policy import resolve_actions
from service.components import build_llm, build_search_provider, build_tools
from service.settings import Settings
from tools.sandbox import Sandbox


def warm_up_conversations(settings: Settings, agents: AgentFactory) -> list[list[ChatMessage]]:
    """The first conversations of a default request's runs (its actions resolved as a request
    that names none): the prompts worth keeping warm."""
    actions = resolve_actions(settings.allowed_actions, None)
    return agents.warm_up_conversations(actions)


async def save_warm_states(settings: Settings, build: Callable[[Settings], LLM] = build_llm) -> int:
    """Prefill the warm-up prompts and save their states, then check that a fresh model
    (another ``build``) restores every one; the exit status (1 when one is not restorable)."""
    if settings.llm_base_url is not None:
        print("reactpal: LLM_BASE_URL is set: no embedded model to warm")
        return 0
    box = Sandbox(settings.sandbox_config())  # never started: the prompt only names its tool
    provider = build_search_provider(settings)
    llm = build(settings)
    try:
        tools = build_tools(settings, box, provider)
        conversations = warm_up_conversations(settings, AgentFactory(llm, box, tools))
        started = time.monotonic()
        await llm.check()
        await llm.warm_up(conversations)  # restores the saved ones, prefills and saves the rest
        seconds = time.monotonic() - started
    finally:
        await llm.aclose()
        await provider.aclose()
    check = build(settings)
    try:
        if not isinstance(check, LocalLLM):  # pragma: no cover - only the embedded model warms
            return 0
        restored = await check.restore_saved(conversations)
    finally:
        await check.aclose()
    if restored != len(conversations):
        print(
            f"reactpal: only {restored} of {len(conversations)} warm states could be restored "
            f"(see the log above; {check.warm_dir} must be writable)",
            file=sys.stderr,
        )
        return 1
    print(f"reactpal: {restored} warm states saved in {check.warm_dir} ({seconds:.1f} s)")
    return 0
