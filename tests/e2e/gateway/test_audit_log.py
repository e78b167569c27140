"""The gateway's log as a platform team reads it: JSON lines, one audit line per tool call
(caller, tool, namespace, agent, outcome, duration), and never an argument's value."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from devcluster import gateway_process
from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e

AUDIT_LOGGER = "agent_gateway.audit"


def log_text(gateway: gateway_process.RunningGateway, since: int = 0) -> str:
    return gateway.process.log.read_bytes()[since:].decode(errors="replace")


def log_size(gateway: gateway_process.RunningGateway) -> int:
    return gateway.process.log.stat().st_size


async def audit_lines(gateway: gateway_process.RunningGateway, since: int, namespace: str,
                      count: int) -> list[dict[str, Any]]:
    """The audit lines about `namespace` written after byte `since`, once there are `count`."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in log_text(gateway, since).splitlines() if line.startswith("{")]
        found = [line for line in lines if line.get("logger") == AUDIT_LOGGER and line.get("namespace") == namespace]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_every_tool_call_writes_one_audit_line(gateway, namespace, token_for):
    since = log_size(gateway)
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="audited", namespace=namespace, ai_provider="echo")
        refused = await mcp.refusal("describe_agent", name="missing", namespace=namespace)
        assert refused.code == "not_found"
        await mcp.call("list_schedules", agent_name="audited", namespace=namespace)

    lines = await audit_lines(gateway, since, namespace, 3)
    caller = f"system:serviceaccount:{namespace}:mcp-caller"
    assert [(line["caller"], line["tool"], line["namespace"], line["agent"], line["outcome"]) for line in lines] == [
        (caller, "make_agent", namespace, "audited", "ok"),
        (caller, "describe_agent", namespace, "missing", "not_found"),
        (caller, "list_schedules", namespace, "audited", "ok"),
    ]
    for line in lines:
        assert line["message"] == "tool call" and line["severity"] == "info"
        assert isinstance(line["duration_seconds"], float) and 0 <= line["duration_seconds"] < 60, line


async def test_argument_values_never_reach_the_gateways_log(gateway, namespace, token_for):
    secret = f"sk_live_{uuid.uuid4().hex}"  # not a valid agent name: make_agent refuses it
    since = log_size(gateway)
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="keeper", namespace=namespace, ai_provider="echo")
        await mcp.call("set_agent_state", agent_name="keeper", key="api", value={"token": secret},
                       namespace=namespace)
        deadline = time.monotonic() + 60
        while True:  # until the new replica is ready to chat
            try:
                reply = await mcp.call("chat_with_agent", name="keeper", message=f"remember {secret}",
                                       namespace=namespace)
                break
            except mcpclient.ToolFailed as failed:
                if failed.code != "unavailable" or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
        assert secret in reply["reply"]  # it did reach the replica and back
        # Refused by the input schema: the SDK's validation message quotes the value it refused.
        assert (await mcp.refusal("scale_agent", name="keeper", replicas=secret, namespace=namespace)).code == "invalid"
        assert (await mcp.refusal("make_agent", name=secret, namespace=namespace)).code == "invalid"

    lines = await audit_lines(gateway, since, namespace, 5)
    written = log_text(gateway, since)
    assert secret not in written, [line for line in written.splitlines() if secret in line]
    assert [(line["tool"], line["agent"], line["outcome"]) for line in lines][-2:] == [
        ("scale_agent", "keeper", "invalid"), ("make_agent", "(not a valid name)", "invalid")]


def test_every_gateway_log_line_is_json(gateway):
    lines = [line for line in log_text(gateway).splitlines() if line.strip()]
    assert any("Uvicorn running" in line for line in lines), lines[:5]  # the server's own lines too
    for line in lines:
        parsed = json.loads(line)
        assert {"timestamp", "severity", "logger", "message"} <= parsed.keys(), line
