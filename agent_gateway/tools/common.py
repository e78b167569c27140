"""What every tool shares: parameter types with their limits, and the call prelude
(rate limit, then RBAC) that runs before a tool touches anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from mcp.types import ToolAnnotations
from pydantic import Field

from agent_api import constants, secret_refs
from agent_gateway import auth, deps, results

AgentName = Annotated[str, Field(min_length=1, max_length=constants.MAX_CLUSTER_NAME_LENGTH,
                                 description="the agent's name (a DNS label)")]
Namespace = Annotated[str | None, Field(max_length=constants.DNS_LABEL_MAX,
                                        description="Kubernetes namespace; the gateway's default when omitted")]
ReplicaName = Annotated[str, Field(min_length=1, max_length=constants.DNS_LABEL_MAX,
                                   description="a replica name, e.g. daring-duck")]
ItemName = Annotated[str, Field(min_length=1, max_length=constants.DNS_LABEL_MAX)]
FunctionName = Annotated[str, Field(min_length=1, max_length=constants.DNS_LABEL_MAX,
                                    description="lowercase words joined by dots, e.g. scraping.fetch-mentions")]
StateKey = Annotated[str, Field(min_length=1, max_length=256)]

# What each tool does to the agent, in MCP's hints (clients use them to decide what to confirm
# and what to retry). destructive: may remove or overwrite something ("false: only additive
# updates"); idempotent: the same call again changes nothing more; open world: reaches beyond
# the cluster (the agent's model, the endpoints its functions call).
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
"""Creates something new (make_agent, add_*): nothing is lost; a second call adds another or is refused."""
REPLACE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
"""Sets a value, overwriting what was there (set_agent_state, configure_*, scale_agent, whose
scale-down deletes replicas); the same call again leaves the same result."""
REMOVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
"""Deletes by name; again, there is nothing more to delete."""
ACT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
"""Runs the agent (chat, a function): each call is a new run that reaches its model or endpoints."""


async def guard(d: deps.Deps, namespace: str | None, verb: str, subresource: str = "") -> tuple[auth.Caller, str]:
    """Rate limit and authorize the current caller; the namespace the call acts in."""
    caller = auth.current_caller(d.local_caller)
    target = namespace or d.settings.default_namespace
    await d.limiter.check(caller.key, caller.username)
    await d.authorizer.require(caller, target, verb, subresource)
    return caller, target


async def update_spec(d: deps.Deps, caller: auth.Caller, namespace: str, agent: str,
                      change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Apply a spec edit for `caller`, who must be allowed to get every Secret it newly references.

    The gateway writes as its own ServiceAccount, which the admission webhook exempts from that
    check, so it is made here, for the caller, on every recomputed result (a conflict re-reads)."""
    async def authorize(old: dict[str, Any], new: dict[str, Any]) -> None:
        await d.authorizer.require_secret_access(caller, namespace, secret_refs.added(old, new))

    return await d.kube.update_spec(namespace, agent, change, authorize)


def changed(obj: dict[str, Any], message: str) -> results.Changed:
    meta = obj.get("metadata") or {}
    return results.Changed(agent=meta.get("name", ""), namespace=meta.get("namespace", ""), message=message,
                           generation=meta.get("generation"))


def member_names(obj: dict[str, Any]) -> list[str]:
    members = (obj.get("status") or {}).get("members") or []
    return [m["name"] for m in sorted(members, key=lambda m: m["ordinal"])]


def schedules(spec: dict[str, Any]) -> list[results.ScheduleInfo]:
    return [results.ScheduleInfo(name=s["name"], function=s["function"], cron=s["cron"],
                                 timezone=s.get("timezone", "UTC"), mode=s.get("mode", "single"),
                                 enabled=s.get("enabled", True))
            for s in spec.get("schedules") or []]
