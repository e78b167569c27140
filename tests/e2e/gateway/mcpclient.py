"""The official MCP client against the gateway, with a bearer token; tool answers as dicts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


class ToolFailed(AssertionError):
    """A tool answered with an MCP tool error; the message is what the caller would read, and
    `structured` what a program would (the error's code)."""

    def __init__(self, message: str, structured: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.structured = structured or {}

    @property
    def code(self) -> str | None:
        return self.structured.get("code")


class Session:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.progress: list[tuple[float, float | None, str | None]] = []

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            self.progress.append((progress, total, message))

        result = await self.client.call_tool(tool, arguments, progress_callback=on_progress,
                                             read_timeout_seconds=600)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        if result.is_error:
            raise ToolFailed(text, result.structured_content)
        return result.structured_content or {}

    async def error(self, tool: str, **arguments: Any) -> str:
        """The message of a call that must fail."""
        try:
            answer = await self.call(tool, **arguments)
        except ToolFailed as failed:
            return str(failed)
        raise AssertionError(f"{tool}({arguments}) was expected to fail; it answered {answer}")

    async def refusal(self, tool: str, **arguments: Any) -> ToolFailed:
        """The refusal of a call that must fail: its message and structured content."""
        try:
            answer = await self.call(tool, **arguments)
        except ToolFailed as failed:
            return failed
        raise AssertionError(f"{tool}({arguments}) was expected to fail; it answered {answer}")


@contextlib.asynccontextmanager
async def connect(mcp_url: str, token: str | None, statuses: list[int] | None = None,
                  transport: httpx2.AsyncBaseTransport | None = None,
                  mode: str = "auto") -> AsyncIterator[Session]:
    """A session as the holder of `token`; HTTP statuses seen are appended to `statuses`;
    `transport` (default: httpx's own) carries every HTTP request; `mode` is the client's
    protocol negotiation (`auto`: the stateless 2026 protocol where the server speaks it;
    `legacy`: the initialize handshake and a session id, as 2025-era clients do)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def record(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(600, connect=10),
                                  event_hooks={"response": [record]}, transport=transport) as http, \
            Client(streamable_http_client(mcp_url, http_client=http), mode=mode) as client:
        yield Session(client)
