"""Actions from MCP servers: ``MCP_SERVERS=name=url,...`` makes each tool of each server
(streamable HTTP) an action named ``<server>.<tool>``, usable only where ``ALLOWED_ACTIONS``
lists it.

What a remote server says is untrusted, like a web page:

- **Descriptions are pinned.** A tool's description and argument schema are read once, when
  the service starts (or, for a server that was down then, the first time it answers), and
  the model only ever sees that text, cleaned and capped. Before every call the tool list is
  read again; a tool whose description or schema changed since is refused and logged (a
  server that rewrites its descriptions later is how "tool poisoning" reaches a model).
- **Calls are bounded**: a timeout on the whole call (connect, list, call), and an
  observation cleaned of control characters and protocol-like lines and capped in size, as
  search results are.
- **A server that is down is an observation**, never a failed run: ``ToolUnavailable``.

    McpServers        the configured servers; ``discover()`` at start, ``tools()`` for the registry
    └── McpTool       one remote tool as an action (``tools.base.Tool``)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from tools.base import ToolError, ToolOutput, ToolUnavailable
from tools.search.base import clean_block, clean_line, truncate

if TYPE_CHECKING:  # the SDK is imported when a server is configured: it costs ~1 s at start
    from mcp import Client
    from mcp_types import CallToolResult
    from mcp_types import Tool as RemoteTool

log = structlog.get_logger(__name__)

MAX_DESCRIPTION_CHARS = 300
MAX_OBSERVATION_CHARS = 4000
MAX_TOOLS_PER_SERVER = 64
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


class McpConfigError(ValueError):
    """``MCP_SERVERS`` cannot be used as written."""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    url: str


def parse_servers(entries: Sequence[str]) -> list[ServerSpec]:
    """``["calc=http://host:9000/mcp", ...]`` as specs; ``McpConfigError`` names what is wrong."""
    specs: list[ServerSpec] = []
    for entry in entries:
        name, sep, url = entry.partition("=")
        name, url = name.strip().lower(), url.strip()
        if not sep or not _NAME.fullmatch(name):
            raise McpConfigError(
                f"MCP_SERVERS entry {entry!r} must be name=url, the name in lower-case letters, "
                "digits or '_' (it prefixes the actions: name.tool)"
            )
        if not url.startswith(("http://", "https://")):
            raise McpConfigError(f"MCP server {name!r}: {url!r} is not an http(s) URL")
        if any(spec.name == name for spec in specs):
            raise McpConfigError(f"MCP server {name!r} is named twice")
        specs.append(ServerSpec(name, url))
    return specs


def action_name(server: str, tool: str) -> str:
    """``server.tool``, the tool's name in lower case with any other character as ``_``."""
    return f"{server}.{re.sub(r'[^a-z0-9_]', '_', tool.lower())}"


def fingerprint(tool: RemoteTool) -> str:
    """What is pinned of a tool: its description and argument schema."""
    text = json.dumps([tool.description or "", tool.input_schema], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class McpServer:
    """One configured server: its pinned tools, and how to reach it."""

    def __init__(self, spec: ServerSpec, *, timeout_s: float) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.pinned: dict[str, str] | None = None  # tool name -> fingerprint, once discovered
        self.remote: dict[str, RemoteTool] = {}

    async def _listing(self, client: Client) -> dict[str, RemoteTool]:
        listed = await client.list_tools()
        tools = [t for t in listed.tools if _TOOL_NAME.fullmatch(t.name)]
        return {tool.name: tool for tool in tools[:MAX_TOOLS_PER_SERVER]}

    def _client(self) -> Client:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        return Client(
            streamable_http_client(self.spec.url),
            read_timeout_seconds=self.timeout_s,
            cache=None,
        )

    async def discover(self) -> bool:
        """Read and pin the server's tools; False (logged) when it cannot be reached."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._client() as client:
                    remote = await self._listing(client)
        except Exception as exc:  # any failure of a remote server: logged
            log.warning("MCP server unreachable", server=self.spec.name, error=_reason(exc))
            return False
        self.remote = remote
        self.pinned = {name: fingerprint(tool) for name, tool in remote.items()}
        log.info("MCP tools pinned", server=self.spec.name, tools=sorted(remote))
        return True

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call ``tool`` after checking that it is still what was pinned."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._client() as client:
                    current = (await self._listing(client)).get(tool)
                    pinned = (self.pinned or {}).get(tool)
                    if current is None or fingerprint(current) != pinned:
                        log.warning(
                            "MCP tool changed since start-up: refused",
                            server=self.spec.name,
                            tool=tool,
                            gone=current is None,
                        )
                        raise ToolError(
                            f"the MCP server {self.spec.name!r} changed or removed the tool "
                            f"{tool!r} since it was pinned at start-up; it is not called"
                        )
                    return await client.call_tool(tool, arguments)
        except ToolError:
            raise
        except TimeoutError:
            raise ToolUnavailable(
                f"the MCP server {self.spec.name!r} did not answer within {self.timeout_s:g} s"
            ) from None
        except Exception as exc:  # translated at the boundary
            raise ToolUnavailable(
                f"the MCP server {self.spec.name!r} cannot be reached ({_reason(exc)})"
            ) from None


class McpTool:
    """One remote tool as the action ``<server>.<tool>``. Created for every tool the server
    listed, and for every such action ``ALLOWED_ACTIONS`` names while its server has not
    answered yet: that one is unavailable (``availability``), so runs do not offer it, until
    ``McpServers.keep_discovering`` reaches the server."""

    def __init__(self, server: McpServer, action: str) -> None:
        self._server = server
        self.name = action
        self._tool = action.split(".", 1)[1]

    @property
    def _remote(self) -> RemoteTool | None:
        server = self._server
        return next(
            (t for n, t in server.remote.items() if action_name(server.spec.name, n) == self.name),
            None,
        )

    def availability(self) -> str | None:
        if self._server.pinned is None:
            return f"the MCP server {self._server.spec.name!r} has not been reached yet"
        if self._remote is None:
            return f"the MCP server {self._server.spec.name!r} has no tool {self._tool!r}"
        return None

    @property
    def description(self) -> str:
        remote = self._remote
        described = clean_line(remote.description or "", MAX_DESCRIPTION_CHARS) if remote else ""
        return truncate(
            f"{described or self._tool} (a tool of the MCP server {self._server.spec.name})",
            MAX_DESCRIPTION_CHARS,
        )

    @property
    def input_hint(self) -> str:
        remote = self._remote
        if remote is None:
            return "JSON arguments"
        return _single_text_argument(remote.input_schema) or _json_hint(remote.input_schema)

    async def run(self, tool_input: str) -> str:
        remote = self._remote
        if remote is None:
            raise ToolUnavailable(self.availability() or f"{self.name} is unavailable")
        arguments = self._arguments(tool_input, remote)
        result = await self._server.call(remote.name, arguments)
        text = _observation(result)
        if result.is_error:
            return ToolOutput(text, failed=True)
        return ToolOutput(text, result=text)

    def _arguments(self, tool_input: str, remote: RemoteTool) -> dict[str, Any]:
        text = tool_input.strip()
        single = _single_text_argument(remote.input_schema)
        if single is not None and not text.startswith("{"):
            return {single: text}
        try:
            value = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ToolError(
                f"{self.name} takes a JSON object of arguments ({self.input_hint}): {exc.msg}"
            ) from None
        if not isinstance(value, dict):
            raise ToolError(f"{self.name} takes a JSON object of arguments ({self.input_hint})")
        return value


class McpServers:
    """The servers of ``MCP_SERVERS``: discovered at start, their tools as actions."""

    RETRY_S = 30.0  # how often a server not reached yet is tried again

    def __init__(self, specs: Sequence[ServerSpec], *, timeout_s: float = 10.0) -> None:
        self.servers = [McpServer(spec, timeout_s=timeout_s) for spec in specs]

    async def discover(self) -> None:
        await asyncio.gather(*(s.discover() for s in self.servers if s.pinned is None))

    async def keep_discovering(self, attempts: int = 2880) -> None:
        """Try the servers not reached yet every ``RETRY_S`` (a day's worth at most)."""
        for _ in range(attempts):
            if all(server.pinned is not None for server in self.servers):
                return
            await asyncio.sleep(self.RETRY_S)
            await self.discover()

    def tools(self, allowed: Sequence[str] = ()) -> list[McpTool]:
        """An action for every tool listed, and for every ``<server>.<tool>`` in ``allowed``
        whose server has not answered yet."""
        actions: dict[str, McpTool] = {}
        for server in self.servers:
            names = [action_name(server.spec.name, name) for name in server.remote]
            names += [a for a in allowed if a.startswith(f"{server.spec.name}.")]
            for action in names:
                actions.setdefault(action, McpTool(server, action))
        return list(actions.values())

    def unreachable(self) -> list[str]:
        return [server.spec.name for server in self.servers if server.pinned is None]


def _single_text_argument(schema: dict[str, Any]) -> str | None:
    """The argument's name when the tool takes exactly one, a string: then the model may
    write plain text between the brackets."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or len(properties) != 1:
        return None
    ((name, spec),) = properties.items()
    return name if isinstance(spec, dict) and spec.get("type") == "string" else None


def _json_hint(schema: dict[str, Any]) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return "JSON arguments"
    fields = ", ".join(
        f'"{clean_line(str(name), 40)}": {_type_of(spec)}' for name, spec in properties.items()
    )
    return truncate(f"JSON {{{fields}}}", 200)


def _type_of(spec: Any) -> str:
    kind = spec.get("type") if isinstance(spec, dict) else None
    return clean_line(kind, 20) if isinstance(kind, str) else "value"


def _observation(result: CallToolResult) -> str:
    from mcp_types import TextContent

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{getattr(block, 'type', 'content')} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = clean_block("\n".join(parts), MAX_OBSERVATION_CHARS)
    return truncate(text, MAX_OBSERVATION_CHARS) or "(the tool returned nothing)"


def _reason(exc: BaseException) -> str:
    """A short, safe reason: the type, and the first line of the message, capped."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    message = clean_line(str(exc), 200)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
