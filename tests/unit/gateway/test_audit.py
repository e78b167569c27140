"""The audit line: outcome from the answer, target names only when they are names, the
caller over stdio, and the line written however the call ended."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from mcp.types import CallToolResult, TextContent

from agent_gateway import audit, auth, errors

SCOPE = audit.Scope(default_namespace="team-a", local_caller=auth.Caller(username="alice"))


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    fields = ("caller", "tool", "namespace", "agent", "outcome")
    return [{f: getattr(r, f) for f in fields} for r in caplog.records if r.name == audit.log.name]


def _error(code: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text="no")], structured_content={"code": code},
                          is_error=True)


@pytest.mark.parametrize(("result", "outcome"), [
    ({"agent": "x"}, "ok"), (_error("not_found"), "not_found"), (_error("rate_limited"), "rate_limited"),
    (_error("made-up"), "internal")])
def test_outcome_is_ok_or_the_error_code(result: object, outcome: str):
    assert errors.outcome(result) == outcome


def test_a_line_names_the_default_namespace_and_the_agent(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    audit.write(SCOPE, "set_agent_state", {"agent_name": "scraper", "key": "k", "value": "sk-1"}, "ok", 0.5)
    assert _lines(caplog) == [{"caller": "alice", "tool": "set_agent_state", "namespace": "team-a",
                               "agent": "scraper", "outcome": "ok"}]
    assert "sk-1" not in caplog.text


def test_what_is_not_a_name_is_not_written(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    audit.write(SCOPE, "Do This Now", {"name": "sk_live_123", "namespace": {"x": "sk_live_456"}}, "invalid", 0.1)
    (line,) = _lines(caplog)
    assert line["tool"] == "(not a tool name)"
    assert line["agent"] == line["namespace"] == "(not a valid name)"
    assert "sk_live" not in caplog.text


class _Server:
    audit_scope = SCOPE

    @audit.audited
    async def call_tool(self, name: str, arguments: dict[str, Any], context: object = None) -> object:
        if name == "slow":
            await asyncio.sleep(10)
        if name == "crash":
            raise RuntimeError("escaped")
        return {"ok": True}


async def test_the_line_is_written_however_the_call_ends(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    server = _Server()
    assert await server.call_tool("list_agents", {}) == {"ok": True}
    with pytest.raises(RuntimeError):
        await server.call_tool("crash", {"name": "a"})
    slow = asyncio.create_task(server.call_tool("slow", {"name": "b"}))
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert [(line["tool"], line["outcome"]) for line in _lines(caplog)] == [
        ("list_agents", "ok"), ("crash", "internal"), ("slow", "cancelled")]
