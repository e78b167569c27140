"""chat_with_agent: a message to one replica, routed by load or pinned by name, with progress
notifications while the turn runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from agent_gateway import auth, deps, results
from agent_gateway.tools import common, replicas

MAX_MESSAGE = 100_000
DEFAULT_CONVERSATION = "default"
# How often a client waiting on a turn hears that it is still running: often enough that a
# client (or a proxy) with an idle timeout of tens of seconds keeps the call open and a person
# sees it is alive; one small notification per interval costs nothing next to a model call.
HEARTBEAT_SECONDS = 2.0

T = TypeVar("T")


def register(server: MCPServer, d: deps.Deps) -> None:
    @server.tool(annotations=common.ACT)
    async def chat_with_agent(
        name: common.AgentName,
        message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE)],
        ctx: Context,
        replica: common.ReplicaName | None = None,
        conversation_id: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
        namespace: common.Namespace = None,
    ) -> results.ChatReply:
        """Send a message to the agent and get its reply, with the name of the replica that answered.

        Without replica, the least busy ready replica answers. Each replica keeps its own memory
        per conversation: pin `replica` (from an earlier reply) to continue with the one that
        remembers. conversation_id defaults to one per caller ("default"). Conversations are
        yours alone: another caller using the same conversation_id has a separate one. With a
        progress token, progress notifications say which replica got the message and, every few
        seconds, that it is still working."""
        caller, ns = await common.guard(d, namespace, "patch")
        obj = await d.kube.get(ns, name)
        target = await replicas.route(d, ns, obj, replica)
        conversation = conversation_id or DEFAULT_CONVERSATION
        progress = Progress(ctx)
        await progress.say(f"sent to replica {target.name}")
        async with d.registry.dispatching(ns, name, target.name):
            answer = await progress.while_waiting(
                d.runtime.chat(ns, name, target.name, target.address, message,
                               bound_conversation(caller, conversation)),
                f"waiting on replica {target.name}")
        replied = answer.get("replica") or target.name
        await progress.say(f"replica {replied} answered after {progress.elapsed():.1f}s")
        return results.ChatReply(reply=str(answer.get("reply", "")), replica=replied, conversation_id=conversation)


class Progress:
    """Progress notifications for one call: a step count that only grows, with a message. The
    SDK sends nothing when the client gave no progress token."""

    def __init__(self, ctx: Context[Any, Any]) -> None:
        self._ctx = ctx
        self._step = 0
        self._started = time.monotonic()
        meta = ctx.request_context.meta
        self.wanted = meta is not None and meta.get("progress_token") is not None
        """Whether the client asked for progress (gave a token): without one nothing is sent."""

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    async def say(self, message: str) -> None:
        self._step += 1
        await self._ctx.report_progress(self._step, None, message)

    async def while_waiting(self, work: Awaitable[T], waiting: str) -> T:
        """`work`'s result; meanwhile, every HEARTBEAT_SECONDS, '<waiting>: <n>s so far'."""
        if not self.wanted:
            # No token, no notifications: no heartbeat task to start and collect per turn.
            return await work
        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_SECONDS)
                await self.say(f"{waiting}: {self.elapsed():.0f}s so far")

        beating = asyncio.create_task(heartbeat())
        try:
            return await work
        finally:
            beating.cancel()
            # A client that went away makes a notification fail; the turn's answer (or its own
            # error) is what counts, so the heartbeat's end is collected, never raised.
            await asyncio.gather(beating, return_exceptions=True)


def bound_conversation(caller: auth.Caller, conversation_id: str) -> str:
    """The id the replica stores a conversation under: the caller's key (fixed length) then
    the id the caller chose. Two callers choosing the same id never share memory, and no id a
    caller can choose names another caller's conversation."""
    return f"{caller.key}:{conversation_id}"
