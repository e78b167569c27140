"""Execution history: every run (scheduled, webhook, chat, manual) with the replica that ran it."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from agent_gateway import deps, results, store
from agent_gateway.tools import common, replicas


def register(server: MCPServer, d: deps.Deps) -> None:
    @server.tool(annotations=common.READ)
    async def list_runs(agent_name: common.AgentName, replica: common.ReplicaName | None = None,
                        limit: Annotated[int, Field(ge=1, le=500)] = 50,
                        namespace: common.Namespace = None) -> results.RunList:
        """The agent's runs, newest first, optionally of one replica (archived ones too): trigger,
        schedule and fire time, function, status, error."""
        _, ns = await common.guard(d, namespace, "get")
        obj = await d.kube.get(ns, agent_name)
        if replica is not None:
            await replicas.resolve(d.store, obj, replica, writing=False)
        rows = await d.store.runs(ns, agent_name, replica, limit)
        return results.RunList(agent=agent_name, replica=replica, runs=[results.RunInfo(
            id=r["id"], replica=r["replica"], trigger=r["trigger"], function=r["function"], status=r["status"],
            schedule=r["schedule"], fire_time=store.iso(r["fire_time"]), attempt=r["attempt"],
            started_at=store.iso(r["started_at"]), finished_at=store.iso(r["finished_at"]), error=r["error"],
        ) for r in rows])
