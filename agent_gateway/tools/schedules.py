"""Schedule tools: add, remove, list."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from agent_gateway import deps, results, spec_edit
from agent_gateway.tools import common


def register(server: MCPServer, d: deps.Deps) -> None:
    @server.tool(annotations=common.ADD)
    async def add_schedule(
        agent_name: common.AgentName,
        function_name: common.FunctionName,
        cron_expression: Annotated[str, Field(min_length=1, max_length=128)],
        schedule_mode: Literal["single", "cluster"] = "single",
        timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC",
        schedule_name: common.ItemName | None = None,
        enabled: bool = True,
        payload: dict[str, Any] | None = None,
        allow_overlap: bool = False,
        missed_fire_policy: Literal["skip", "runOnce", "backfill"] = "skip",
        namespace: common.Namespace = None,
    ) -> results.ScheduleInfo:
        """Run a function of the agent on a cron schedule.

        single mode: each fire runs once, on one replica (whichever is free). cluster mode: each
        fire runs on every replica. cron_expression has 5 fields (minute hour day month weekday)
        or 6 with a leading seconds field ('*/30 * * * * *' = every 30 s), read in `timezone`.
        schedule_name defaults to <function>-<mode>.
        """
        _, ns = await common.guard(d, namespace, "patch")
        chosen: dict[str, Any] = {}

        def edit(spec: dict[str, Any]) -> dict[str, Any]:
            name = schedule_name or spec_edit.schedule_name(spec, function_name, schedule_mode)
            schedule: dict[str, Any] = {"name": name, "function": function_name, "cron": cron_expression,
                                        "timezone": timezone, "mode": schedule_mode, "enabled": enabled,
                                        "allowOverlap": allow_overlap, "missedFirePolicy": missed_fire_policy}
            if payload:
                schedule["payload"] = payload
            chosen.clear()
            chosen.update(schedule)
            return spec_edit.add_schedule(spec, schedule, agent_name)

        await d.kube.update_spec(ns, agent_name, edit)
        return common.schedules({"schedules": [chosen]})[0]

    @server.tool(annotations=common.REMOVE)
    async def remove_schedule(agent_name: common.AgentName, schedule_name: common.ItemName,
                              namespace: common.Namespace = None) -> results.ScheduleList:
        """Remove a schedule from the agent; fires not yet started are not run."""
        _, ns = await common.guard(d, namespace, "patch")
        obj = await d.kube.update_spec(
            ns, agent_name, lambda spec: spec_edit.remove_item(spec, "schedule", schedule_name, agent_name))
        return results.ScheduleList(agent=agent_name, schedules=common.schedules(obj.get("spec") or {}))

    @server.tool(annotations=common.READ)
    async def list_schedules(agent_name: common.AgentName, namespace: common.Namespace = None) -> results.ScheduleList:
        """The agent's schedules: name, function, cron, time zone, mode, enabled."""
        _, ns = await common.guard(d, namespace, "get")
        obj = await d.kube.get(ns, agent_name)
        return results.ScheduleList(agent=agent_name, schedules=common.schedules(obj.get("spec") or {}))
