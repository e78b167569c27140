"""Key-value state tools: per replica, or the cluster-shared scope when no replica is given."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from pydantic import ValidationError

from agent_api import models
from agent_gateway import deps, errors, results, store
from agent_gateway.tools import common, replicas


def register(server: MCPServer, d: deps.Deps) -> None:
    @server.tool(annotations=common.REPLACE)
    async def set_agent_state(agent_name: common.AgentName, key: common.StateKey, value: Any,
                              replica: common.ReplicaName | None = None,
                              namespace: common.Namespace = None) -> results.StateValue:
        """Store a JSON value under `key` in a replica's state, or in the cluster-shared state when
        replica is omitted. Archived replicas' state is read-only. Sizes are limited by
        spec.limits.stateMaxValueBytes / stateMaxTotalBytes."""
        _, ns = await common.guard(d, namespace, "patch")
        obj = await d.kube.get(ns, agent_name)
        scope, _ = await replicas.resolve(d.store, obj, replica, writing=True)
        try:
            limits = models.Limits.model_validate((obj.get("spec") or {}).get("limits") or {})
        except ValidationError:
            limits = models.Limits()
        await d.store.put(ns, agent_name, scope, key, value, limits.state_max_value_bytes,
                          limits.state_max_total_bytes)
        return results.StateValue(agent=agent_name, replica=replica, key=key, found=True, value=value)

    @server.tool(annotations=common.READ)
    async def get_agent_state(agent_name: common.AgentName, key: common.StateKey,
                              replica: common.ReplicaName | None = None,
                              namespace: common.Namespace = None) -> results.StateValue:
        """Read one key of a replica's state (archived replicas too), or of the cluster-shared
        state when replica is omitted. found=false when the key is not set."""
        _, ns = await common.guard(d, namespace, "get")
        obj = await d.kube.get(ns, agent_name)
        scope, archived = await replicas.resolve(d.store, obj, replica, writing=False)
        found, value = await d.store.get(ns, agent_name, scope, key)
        return results.StateValue(agent=agent_name, replica=replica, key=key, found=found, value=value,
                                  archived=archived)

    @server.tool(annotations=common.READ)
    async def list_agent_state_keys(agent_name: common.AgentName, replica: common.ReplicaName | None = None,
                                    namespace: common.Namespace = None) -> results.StateKeys:
        """The keys (with sizes) of a replica's state, archived replicas included, or of the
        cluster-shared state when replica is omitted."""
        _, ns = await common.guard(d, namespace, "get")
        obj = await d.kube.get(ns, agent_name)
        scope, archived = await replicas.resolve(d.store, obj, replica, writing=False)
        rows = await d.store.keys(ns, agent_name, scope)
        return results.StateKeys(agent=agent_name, replica=replica, archived=archived, keys=[
            results.StateKey(key=r["key"], size_bytes=r["size_bytes"], updated_at=store.iso(r["updated_at"]))
            for r in rows])

    @server.tool(annotations=common.REMOVE)
    async def delete_agent_state(agent_name: common.AgentName, key: common.StateKey,
                                 replica: common.ReplicaName | None = None,
                                 namespace: common.Namespace = None) -> results.StateValue:
        """Delete one key of a live replica's state, or of the cluster-shared state when replica is
        omitted. Archived replicas' state cannot be changed."""
        _, ns = await common.guard(d, namespace, "patch")
        obj = await d.kube.get(ns, agent_name)
        scope, _ = await replicas.resolve(d.store, obj, replica, writing=True)
        if not await d.store.delete(ns, agent_name, scope, key):
            where = f'replica "{replica}"' if replica else "the cluster-shared state"
            raise errors.GatewayError(f'agent "{agent_name}" has no key {key!r} in {where}', code="not_found")
        return results.StateValue(agent=agent_name, replica=replica, key=key, found=False)
