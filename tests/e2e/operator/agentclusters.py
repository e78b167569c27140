"""Reading and driving AgentClusters from e2e tests: the object, its members, pods and events,
and the operator's PostgreSQL tables. Every wait polls with a deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agent_api import constants
from tests.e2e.helpers import eventually

G, V, P = constants.GROUP, constants.VERSION, constants.PLURAL


def get(agc: client.CustomObjectsApi, namespace: str, name: str) -> dict:
    return agc.get_namespaced_custom_object(G, V, namespace, P, name)


def exists(agc: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        get(agc, namespace, name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def create(agc: client.CustomObjectsApi, namespace: str, body: dict) -> dict:
    return agc.create_namespaced_custom_object(G, V, namespace, P, body)


def scale(agc: client.CustomObjectsApi, namespace: str, name: str, replicas: int) -> None:
    agc.patch_namespaced_custom_object_scale(G, V, namespace, P, name, {"spec": {"replicas": replicas}})


def patch_spec(agc: client.CustomObjectsApi, namespace: str, name: str, spec: dict) -> dict:
    return agc.patch_namespaced_custom_object(G, V, namespace, P, name, {"spec": spec})


def delete(agc: client.CustomObjectsApi, namespace: str, name: str) -> None:
    agc.delete_namespaced_custom_object(G, V, namespace, P, name)


def status(agc: client.CustomObjectsApi, namespace: str, name: str) -> dict:
    return get(agc, namespace, name).get("status") or {}


def condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


def ready_members(agc: client.CustomObjectsApi, namespace: str, name: str, count: int,
                  timeout: float = 120) -> list[dict]:
    """The members once exactly `count` are listed and all are ready."""
    def check() -> list[dict] | None:
        seen = status(agc, namespace, name)
        members = seen.get("members") or []
        if len(members) == count and seen.get("readyReplicas") == count and all(m["ready"] for m in members):
            return members
        return None

    return eventually(check, timeout=timeout, what=f"{count} ready members of {name}")


def pods_of(core: client.CoreV1Api, namespace: str, cluster: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"{constants.LABEL_CLUSTER}={cluster}").items


def events_of(core: client.CoreV1Api, namespace: str, name: str, reason: str) -> list[client.CoreV1Event]:
    return [e for e in core.list_namespaced_event(namespace).items
            if e.involved_object.name == name and e.involved_object.kind == constants.KIND
            and e.reason == reason]


def event(core: client.CoreV1Api, namespace: str, name: str, reason: str, timeout: float = 60) -> str:
    """The message of the first event with this reason on the AgentCluster (waits for one)."""
    found = eventually(lambda: events_of(core, namespace, name, reason), timeout=timeout,
                       what=f"a {reason} event on {name}")
    return found[0].message


def query(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of one query against the operator's database, as dicts."""
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(database_url)
        try:
            return [dict(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())
