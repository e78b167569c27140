"""Tools of the configured MCP servers, through the official MCP client over streamable HTTP.

Headers come from the server's Secret (environment, see agent_api.secret_env) and are never
logged. Each server's tool list is cached for `refresh_seconds` and fetched again when a call
names a tool the cached list lacks (the server may have gained it since). Every list and call
opens its own short session: an agent loop calls few tools, and a session that cannot outlive
a broken connection is one less thing to heal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.ai import tools

DEFAULT_REFRESH_SECONDS = 300.0


class McpError(Exception):
    """An MCP server could not be reached or answered with an error."""


@dataclass
class McpServerTools:
    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    _cached: list[Any] | None = field(default=None, init=False, repr=False)
    _fetched_at: float = field(default=0.0, init=False, repr=False)

    def _client(self) -> tuple[Any, Any]:
        # Imported here: the MCP SDK is large, and most replicas never talk to an MCP server.
        import mcp
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = create_mcp_http_client(headers=dict(self.headers))
        return mcp.Client(streamable_http_client(self.url, http_client=http)), http

    async def list_tools(self, refresh: bool = False) -> list[Any]:
        fresh = time.monotonic() - self._fetched_at < self.refresh_seconds
        if self._cached is not None and fresh and not refresh:
            return self._cached
        client, http = self._client()
        try:
            async with http, client:
                listed = await client.list_tools()
        except Exception as error:  # network, protocol or HTTP errors of an outside server
            raise McpError(f"MCP server {self.name!r}: cannot list tools: "
                           f"{type(error).__name__}: {error}") from error
        self._cached = list(listed.tools)
        self._fetched_at = time.monotonic()
        return self._cached

    async def call(self, tool: str, arguments: dict[str, Any]) -> tools.ToolResult:
        if (tool not in {t.name for t in await self.list_tools()}
                and tool not in {t.name for t in await self.list_tools(refresh=True)}):
            raise tools.ToolError(f"MCP server {self.name!r} has no tool {tool!r}")
        client, http = self._client()
        try:
            async with http, client:
                result = await client.call_tool(tool, arguments)
        except Exception as error:  # network, protocol or HTTP errors of an outside server
            raise McpError(f"MCP server {self.name!r}: calling {tool!r} failed: "
                           f"{type(error).__name__}: {error}") from error
        if result.structured_content is not None and not result.is_error:
            return tools.ToolResult(tools.render(result.structured_content))
        text = "\n".join(getattr(block, "text", None) or f"[{block.type} content]"
                         for block in result.content)
        return tools.ToolResult(text, is_error=bool(result.is_error))


async def add_mcp_tools(toolbox: tools.Toolbox, servers: list[McpServerTools]) -> list[str]:
    """Offer every server's tools as `<server>__<tool>`; return the errors of unreachable
    servers (their tools are left out, the run goes on, the errors are recorded)."""
    errors = []
    for server in servers:
        try:
            listed = await server.list_tools()
        except McpError as error:
            errors.append(str(error))
            continue
        for tool in listed:
            async def handler(arguments: dict[str, Any], server: McpServerTools = server,
                              name: str = tool.name) -> Any:
                return await server.call(name, arguments)

            toolbox.add(f"{server.name}__{tool.name}", tool.description or tool.name,
                        tool.input_schema or {"type": "object"}, handler)
    return errors
