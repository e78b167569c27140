"""Execution history and manual runs: every run (scheduled, webhook, chat, manual) with the
replica that ran it; run_function starts one now, get_run reads one."""

from __future__ import annotations

import json
from typing import Annotated, Any

import asyncpg
from mcp.server.mcpserver import MCPServer
from pydantic import Field

from agent_gateway import deps, errors, results, spec_edit, store
from agent_gateway.tools import common, replicas

RunId = Annotated[int, Field(ge=1, description="a run id, from run_function or list_runs")]
# How long a replica takes to apply a spec change it was told about (NOTIFY, then one read).
SPEC_CATCH_UP_SECONDS = 2


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
        return results.RunList(agent=agent_name, replica=replica, runs=[results.RunInfo(**info(r)) for r in rows])

    @server.tool(annotations=common.ACT)
    async def run_function(
        name: common.AgentName,
        function: common.FunctionName,
        replica: common.ReplicaName | None = None,
        payload: dict[str, Any] | None = None,
        namespace: common.Namespace = None,
    ) -> results.RunStarted:
        """Run one of the agent's functions now, on the least busy ready replica or on `replica`,
        with `payload` as its input. Answers at once with the run id; get_run shows the output,
        error and status when it has finished. Needs the same permission as chat (patch)."""
        _, ns = await common.guard(d, namespace, "patch")
        obj = await d.kube.get(ns, name)
        spec_edit.require_function(obj.get("spec") or {}, function, name)
        target = await replicas.route(d, ns, obj, replica)
        try:
            async with d.registry.dispatching(ns, name, target.name):
                answer = await d.runtime.start_run(ns, name, target.name, target.address, function, payload or {})
        except errors.GatewayError as refused:
            if refused.code != "not_found":
                raise
            # The spec has it (checked above): the replica has not applied that change yet (the
            # operator stores each generation, the replica loads it on NOTIFY, within seconds).
            raise errors.GatewayError(
                f'replica "{target.name}" has not loaded function "{function}" yet (a spec change reaches the '
                "replicas within seconds); try again shortly", code="unavailable",
                retry_after_seconds=SPEC_CATCH_UP_SECONDS) from None
        return results.RunStarted(agent=name, run_id=answer["run_id"], replica=answer.get("replica") or target.name,
                                  function=function, status=answer.get("status") or "running")

    @server.tool(annotations=common.READ)
    async def get_run(name: common.AgentName, run_id: RunId, namespace: common.Namespace = None) -> results.RunDetail:
        """One run of the agent: status (running, succeeded, failed, ...), output, error, the stop
        reason of a prompt function's agent loop, the replica that ran it, and when it started and
        finished."""
        _, ns = await common.guard(d, namespace, "get")
        await d.kube.get(ns, name)  # an unknown agent is named as such, with the agents there
        row = await d.store.run(ns, name, run_id)
        if row is None:
            raise errors.GatewayError(
                f'agent "{name}" has no run {run_id} in namespace "{ns}"; list_runs shows its runs (old ones '
                "are deleted after spec.limits.historyRetentionHours)", code="not_found")
        output = row["output"]
        return results.RunDetail(**info(row), agent=name, stop_reason=row["stop_reason"],
                                 output=json.loads(output) if isinstance(output, str) else output)


def info(row: asyncpg.Record) -> dict[str, Any]:
    """A `runs` row as RunInfo's fields."""
    return {"id": row["id"], "replica": row["replica"], "trigger": row["trigger"], "function": row["function"],
            "status": row["status"], "schedule": row["schedule"], "fire_time": store.iso(row["fire_time"]),
            "attempt": row["attempt"], "started_at": store.iso(row["started_at"]),
            "finished_at": store.iso(row["finished_at"]), "error": row["error"]}
