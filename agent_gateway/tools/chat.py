"""chat_with_agent: a message to one replica, routed by load or pinned by name."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from agent_gateway import deps, results, routing
from agent_gateway.tools import common

MAX_MESSAGE = 100_000


def register(server: MCPServer, d: deps.Deps) -> None:
    @server.tool(annotations=common.ACT)
    async def chat_with_agent(
        name: common.AgentName,
        message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE)],
        replica: common.ReplicaName | None = None,
        conversation_id: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
        namespace: common.Namespace = None,
    ) -> results.ChatReply:
        """Send a message to the agent and get its reply, with the name of the replica that answered.

        Without replica, the least busy ready replica answers. Each replica keeps its own memory
        per conversation: pin `replica` (from an earlier reply) to continue with the one that
        remembers. conversation_id defaults to one per caller."""
        caller, ns = await common.guard(d, namespace, "patch")
        obj = await d.kube.get(ns, name)
        live = await d.registry.live(ns, name)
        if replica is not None:
            target = routing.pinned(obj, replica, live)
        else:
            members = {m["name"] for m in (obj.get("status") or {}).get("members") or []}
            target = await d.registry.pick(ns, name, members)
            if target is None:
                raise routing.no_ready_replica(obj)
        conversation = conversation_id or f"mcp-{caller.key}"
        async with d.registry.dispatching(ns, name, target.name):
            answer = await d.runtime.chat(target.name, target.address, message, conversation)
        return results.ChatReply(reply=str(answer.get("reply", "")), replica=answer.get("replica") or target.name,
                                 conversation_id=answer.get("conversation_id") or conversation)
