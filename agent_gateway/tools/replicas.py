"""Resolving a replica name a caller gave: live, archived (readable, not writable), or unknown;
and choosing the replica a chat or a run goes to."""

from __future__ import annotations

from typing import Any

from agent_gateway import deps, errors, routing, store


async def resolve(db: store.Store, obj: dict[str, Any], replica: str | None, *, writing: bool) -> tuple[str, bool]:
    """The state scope for `replica` (None: the cluster-shared scope) and whether it is archived."""
    if replica is None:
        return store.SHARED, False
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    live = sorted(m["name"] for m in status.get("members") or [])
    archived = {a["name"] for a in status.get("archived") or []}
    if replica not in live and replica not in archived:
        # The database also remembers members whose AgentCluster was deleted and re-created.
        rows = await db.members(obj["metadata"]["namespace"], name)
        archived |= {r["replica"] for r in rows if r["archived_at"] is not None}
    if replica in archived:
        if writing:
            raise errors.GatewayError(
                f'replica "{replica}" of agent "{name}" is archived: its state is kept and readable, but '
                f"read-only. Live replicas: {', '.join(live) or 'none'}", code="conflict")
        return replica, True
    if replica not in live:
        raise errors.GatewayError(
            f'agent "{name}" has no replica named "{replica}". Live replicas: {", ".join(live) or "none"}'
            + (f"; archived: {', '.join(sorted(archived))}" if archived else ""), code="not_found")
    return replica, False


async def route(d: deps.Deps, namespace: str, obj: dict[str, Any], replica: str | None) -> routing.Live:
    """The replica to send to: the pinned one (live and ready, or an error saying why not), or
    the least busy ready member."""
    name = obj["metadata"]["name"]
    if replica is not None:
        return routing.pinned(obj, replica, await d.registry.live(namespace, name),
                              await _archived_beyond_status(d.store, obj, replica))
    members = {m["name"] for m in (obj.get("status") or {}).get("members") or []}
    target = await d.registry.pick(namespace, name, members)
    if target is None:
        raise routing.no_ready_replica(obj)
    return target


async def _archived_beyond_status(db: store.Store, obj: dict[str, Any], replica: str) -> str | None:
    """When `replica`, named in neither status.members nor status.archived (which keeps only the
    newest few), was archived: PostgreSQL has every member (None: it has no such archived one)."""
    status = obj.get("status") or {}
    if replica in {m["name"] for m in [*(status.get("members") or []), *(status.get("archived") or [])]}:
        return None
    rows = await db.members(obj["metadata"]["namespace"], obj["metadata"]["name"])
    return next((store.iso(r["archived_at"]) for r in rows
                 if r["replica"] == replica and r["archived_at"] is not None), None)
