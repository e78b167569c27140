"""Several gateway processes behind one Service: an MCP client's requests land on whichever
process the load balancer picks, so no request may depend on state another process holds.

The client here sends its HTTP requests to two real gateway processes in turn (a transport
that round-robins the base URL, as a Service without session affinity would), and completes
the seed scenario, with the 2025 handshake protocol and with the 2026 one: make an agent,
scale it with progress, add a schedule that fires, chat and continue pinned to the replica
that answered, with progress notifications throughout."""

from __future__ import annotations

import collections
import itertools

import httpx2
import pytest

from devcluster import gateway_process
from tests.e2e.gateway import mcpclient
from tests.e2e.helpers import eventually_async

pytestmark = pytest.mark.e2e


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next of `gateways` in turn, whatever URL the client asked for,
    and counts what each one received."""

    def __init__(self, gateways: list[gateway_process.RunningGateway]) -> None:
        self._next = itertools.cycle([httpx2.URL(g.url) for g in gateways])
        self._inner = httpx2.AsyncHTTPTransport()
        self.served: collections.Counter[tuple[int | None, str]] = collections.Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = next(self._next)
        request.url = request.url.copy_with(host=target.host, port=target.port)
        request.headers["Host"] = f"{target.host}:{target.port}"
        self.served[(target.port, request.method)] += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


# `legacy` is the 2025 protocol's initialize handshake that most MCP clients in use still speak
# (in stateful mode the server answers it with a session id that only its own process knows);
# `auto` lets this SDK's client pick the 2026 protocol, stateless by design.
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_client_alternating_between_two_gateways_completes_the_seed_scenario(
        gateway, second_gateway, namespace, token_for, mode):
    agent = "alternating"
    transport = RoundRobin([gateway, second_gateway])
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace), transport=transport, mode=mode) as mcp:
        made = await mcp.call("make_agent", name=agent, namespace=namespace, ai_provider="echo")
        assert made["agent"] == agent

        scaled = await mcp.call("scale_agent", name=agent, replicas=2, namespace=namespace)
        members = scaled["members"]
        assert len(set(members)) == 2, scaled
        assert mcp.progress and mcp.progress[-1][1] == 2, mcp.progress  # scale progress arrived

        await mcp.call("add_function", agent_name=agent, function_name="tick",
                       python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
        schedule = await mcp.call("add_schedule", agent_name=agent, function_name="tick",
                                  cron_expression="*/2 * * * * *", schedule_mode="single", namespace=namespace)

        async def fired() -> list[dict] | None:
            runs = (await mcp.call("list_runs", agent_name=agent, limit=50, namespace=namespace))["runs"]
            done = [r for r in runs if r["trigger"] == "schedule" and r["schedule"] == schedule["name"]]
            return done or None

        await eventually_async(fired, what="the schedule to fire")
        await mcp.call("remove_schedule", agent_name=agent, schedule_name=schedule["name"], namespace=namespace)

        mcp.progress.clear()
        hello = await mcp.call("chat_with_agent", name=agent, message="hello", namespace=namespace)
        assert hello["replica"] in members
        messages = [message or "" for _, _, message in mcp.progress]
        assert messages and messages[0] == f"sent to replica {hello['replica']}", messages

        follow = await mcp.call("chat_with_agent", name=agent, message="what did I say?",
                                replica=hello["replica"], namespace=namespace)
        assert follow["replica"] == hello["replica"]
        assert follow["reply"].startswith("echo: what did I say? [1 earlier turn"), follow["reply"]

    # Both processes served the session's POSTs (the tool calls among them).
    ports = {httpx2.URL(g.url).port for g in (gateway, second_gateway)}
    for port in ports:
        assert transport.served[(port, "POST")] >= 5, transport.served
