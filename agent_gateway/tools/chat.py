"""chat_with_agent: a message to one replica, routed by load or pinned by name."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from agent_gateway import auth, deps, results, routing
from agent_gateway.tools import common

MAX_MESSAGE = 100_000
DEFAULT_CONVERSATION = "default"


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
        remembers. conversation_id defaults to one per caller ("default"). Conversations are
        yours alone: another caller using the same conversation_id has a separate one."""
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
        conversation = conversation_id or DEFAULT_CONVERSATION
        async with d.registry.dispatching(ns, name, target.name):
            answer = await d.runtime.chat(ns, name, target.name, target.address, message,
                                          bound_conversation(caller, conversation))
        return results.ChatReply(reply=str(answer.get("reply", "")), replica=answer.get("replica") or target.name,
                                 conversation_id=conversation)


def bound_conversation(caller: auth.Caller, conversation_id: str) -> str:
    """The id the replica stores a conversation under: the caller's key (fixed length) then
    the id the caller chose. Two callers choosing the same id never share memory, and no id a
    caller can choose names another caller's conversation."""
    return f"{caller.key}:{conversation_id}"
