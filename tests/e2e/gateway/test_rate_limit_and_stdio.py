"""The gateway's other edges: the per-caller rate limit answers with how long to wait, and the
same tools work over stdio for local clients (authorized as the kubeconfig's identity)."""

from __future__ import annotations

import sys

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from devcluster import gateway_process
from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e


async def test_a_caller_over_its_rate_limit_is_told_how_long_to_wait(
        devcluster, operator, redis_server, namespace, token_for, tmp_path):
    limited = gateway_process.start(tmp_path, devcluster.kubeconfig, operator.database_url, redis_server.url,
                                    operator.replica_auth_key, rate_limit_per_minute=3)
    try:
        refused: mcpclient.ToolFailed | None = None
        allowed = 0
        async with mcpclient.connect(limited.mcp_url, token_for(namespace)) as mcp:
            # Fixed one-minute windows: ten quick calls straddle at most two of them, so at most
            # six can pass and a refusal must come.
            for _ in range(10):
                try:
                    await mcp.call("list_agents", namespace=namespace)
                    allowed += 1
                except mcpclient.ToolFailed as failed:
                    refused = failed
                    break
    finally:
        limited.stop()
    assert refused is not None and 3 <= allowed <= 6
    assert "the limit is 3 per minute per caller; retry in" in str(refused)
    assert refused.code == "rate_limited", refused.structured
    assert 1 <= refused.structured["retry_after_seconds"] <= 61, refused.structured


def _stdio_gateway(devcluster, operator, redis_server, namespace: str) -> StdioServerParameters:
    """The gateway as an MCP client spawns it over stdio, acting as the kubeconfig's user."""
    return StdioServerParameters(command=sys.executable, args=[
        "-m", "agentclusters", "gateway", "--stdio", f"--kubeconfig={devcluster.kubeconfig}",
        f"--database-url={operator.database_url}", f"--redis-url={redis_server.url}",
        f"--default-namespace={namespace}",
    ])


async def test_the_tools_work_over_stdio_as_the_kubeconfig_identity(devcluster, operator, redis_server, namespace):
    server = _stdio_gateway(devcluster, operator, redis_server, namespace)
    async with Client(stdio_client(server)) as client:
        session = mcpclient.Session(client)
        made = await session.call("make_agent", name="local", ai_provider="echo")
        listed = await session.call("list_agents")
    assert made
    assert [agent["name"] for agent in listed["agents"]] == ["local"]


async def test_chat_over_stdio_uses_the_token_secret_the_kubeconfig_user_can_read(
        devcluster, operator, redis_server, namespace):
    """No master key over stdio: the gateway reads the cluster's token Secret as the local user."""
    server = _stdio_gateway(devcluster, operator, redis_server, namespace)
    async with Client(stdio_client(server)) as client:
        session = mcpclient.Session(client)
        await session.call("make_agent", name="local", ai_provider="echo")
        await session.call("scale_agent", name="local", replicas=1)
        answer = await session.call("chat_with_agent", name="local", message="hello over stdio")
    assert answer["reply"] == "echo: hello over stdio [no earlier turns of this conversation]"
