"""Auth through the real gateway: no token 401, a bad token 401, RBAC per namespace (403-style
tool errors across namespaces), the caller's own namespace works."""

from __future__ import annotations

import httpx2
import pytest

from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "0"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_no_token_is_401(gateway):
    answer = httpx2.post(gateway.mcp_url, json=INITIALIZE, headers=HEADERS, timeout=30)
    assert answer.status_code == 401
    assert "Bearer" in answer.headers.get("www-authenticate", "")


def test_bad_token_is_401(gateway):
    answer = httpx2.post(gateway.mcp_url, json=INITIALIZE, headers={**HEADERS, "Authorization": "Bearer nope"},
                         timeout=30)
    assert answer.status_code == 401


async def test_the_official_client_without_a_token_is_refused(gateway):
    statuses: list[int] = []
    with pytest.raises(Exception):  # noqa: B017 - the SDK reports a 401 as a generic MCPError
        async with mcpclient.connect(gateway.mcp_url, None, statuses) as mcp:
            await mcp.call("list_agents")
    assert statuses and set(statuses) == {401}


async def test_a_token_works_in_its_namespace_and_nowhere_else(gateway, make_namespace, token_for):
    team_a, team_b = make_namespace(), make_namespace()
    token_a = token_for(team_a)
    async with mcpclient.connect(gateway.mcp_url, token_a) as mcp:
        made = await mcp.call("make_agent", name="scout", namespace=team_a)
        assert made["agent"] == "scout"
        listed = await mcp.call("list_agents", namespace=team_a)
        assert [a["name"] for a in listed["agents"]] == ["scout"]

        for tool, arguments in [("list_agents", {}), ("make_agent", {"name": "intruder"}),
                                ("describe_agent", {"name": "scout"}),
                                ("scale_agent", {"name": "scout", "replicas": 2}),
                                ("get_agent_state", {"agent_name": "scout", "key": "k"})]:
            message = await mcp.error(tool, namespace=team_b, **arguments)
            assert "forbidden:" in message, message
            assert f'namespace "{team_b}"' in message and f"serviceaccount:{team_a}:mcp-caller" in message
