"""A real MCP server (official SDK, `MCPServer`) served over streamable HTTP on 127.0.0.1 by
uvicorn, recording the headers of every request it receives."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

from devcluster import ports


def build_server(prices: dict[str, float]) -> MCPServer:
    server = MCPServer("catalogue")

    @server.tool()
    def lookup_price(item: str) -> dict[str, Any]:
        """The current price of an item in the catalogue."""
        if item not in prices:
            raise ValueError(f"unknown item {item!r}")
        return {"item": item, "price": prices[item]}

    return server


class LoopbackMcpServer:
    def __init__(self, prices: dict[str, float]) -> None:
        self.port = ports.free_port()
        self.seen_headers: list[dict[str, str]] = []
        inner = build_server(prices).streamable_http_app()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.seen_headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
            await inner(scope, receive, send)

        # log_config=None: uvicorn's default would reconfigure its loggers for the whole test
        # process (level warning, no propagation), and tests that read logs would see less.
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_config=None, lifespan="on"))
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> LoopbackMcpServer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task
            await asyncio.sleep(0.02)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
