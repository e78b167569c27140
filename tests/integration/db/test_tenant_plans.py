"""Row-level security costs the hot queries nothing in plan shape: under a tenant role,
PeekWork, ClaimFires and CompleteFire use the same indexes as under the owner, and never scan
a table. The policy's `(SELECT agentclusters_tenant_namespace())` is one InitPlan per
statement, which the planner treats as a parameter."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from agent_api.db import migrate, queries, tenants

NAMESPACES = [f"team-{i}" for i in range(20)]
CLUSTERS = ["app", "other"]
TENANT = "team-7"
NOW = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
async def connections(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    """(owner, tenant of team-7) over a history of 20 namespaces x 2 clusters: finished fires
    and runs, due and planned-ahead fires, live leases, and lanes."""
    owner = await asyncpg.connect(database_url)
    await migrate.apply(owner)
    await owner.execute("""
        INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function, status,
                           finished_at, late_after)
        SELECT ns, c, 's' || (n % 5), $1::timestamptz - make_interval(secs => n), 'single', 'f',
               CASE WHEN n <= 40 THEN 'available' ELSE 'succeeded' END,
               CASE WHEN n <= 40 THEN NULL ELSE $1::timestamptz - make_interval(secs => n) END,
               $1::timestamptz - make_interval(secs => n) + interval '1 minute'
        FROM unnest($2::text[]) AS ns, unnest($3::text[]) AS c, generate_series(1, 600) AS n
    """, NOW, NAMESPACES, CLUSTERS)
    await owner.execute("""
        INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function, status,
                           attempt, lease_owner, lease_token, lease_expires_at, started_at,
                           exclusive)
        SELECT ns, c, 'busy' || n, $1, 'single', 'f', 'running', 1, 'r0', n,
               $1::timestamptz + make_interval(secs => n), $1, true
        FROM unnest($2::text[]) AS ns, unnest($3::text[]) AS c, generate_series(1, 5) AS n
    """, NOW, NAMESPACES, CLUSTERS)
    await owner.execute("""
        INSERT INTO runs (namespace, cluster, replica, fire_id, trigger, function, status,
                          lease_token, started_at)
        SELECT namespace, cluster, 'r0', id, 'schedule', function,
               CASE status WHEN 'running' THEN 'running' ELSE 'succeeded' END, lease_token,
               fire_time
        FROM fires
    """)
    await owner.execute("""
        INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, planned_until)
        SELECT DISTINCT namespace, cluster, schedule, '', $1::timestamptz FROM fires
    """, NOW)
    await owner.execute("ANALYZE")
    password = tenants.new_password()
    role = await tenants.ensure_role(owner, TENANT, password)
    tenant = await asyncpg.connect(tenants.tenant_url(database_url, role, password))
    try:
        yield owner, tenant
    finally:
        await tenant.close()
        await owner.close()


def _nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(conn: asyncpg.Connection, name: str, *args: object) -> tuple[set[str], list[str]]:
    """(indexes used, tables scanned sequentially) of one named query's plan."""
    explained = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {queries.SQL[name]}",
                                               *args))
    nodes = list(_nodes(explained[0]["Plan"]))
    return ({n["Index Name"] for n in nodes if "Index Name" in n},
            [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"])


async def _running_fire(owner: asyncpg.Connection) -> asyncpg.Record:
    return await owner.fetchrow(
        "SELECT f.id, f.lease_token, r.id AS run_id FROM fires f JOIN runs r ON r.fire_id = f.id"
        " WHERE f.namespace = $1 AND f.cluster = 'app' AND f.status = 'running' LIMIT 1", TENANT)


QUERIES = {
    "PeekWork": (lambda fire: (TENANT, "app", "r0", [], NOW),
                 {"fires_available_idx", "fires_late_idx", "fires_running_lease_idx"}),
    "ClaimFires": (lambda fire: (TENANT, "app", "r0", 8, 12, [], 30.0, NOW),
                   {"fires_available_idx", "fires_running_lease_idx",
                    "fires_one_running_per_schedule"}),
    "CompleteFire": (lambda fire: (fire["id"], fire["lease_token"], "r0", "failed", "boom",
                                   None, fire["run_id"], "backoff", 3, 10.0, "rejected", NOW),
                     {"fires_pkey", "runs_pkey", "schedule_lanes_pkey"}),
}


@pytest.mark.parametrize("name", QUERIES)
async def test_hot_query_uses_the_same_indexes_under_a_tenant_role(connections, name):
    owner, tenant = connections
    arguments, expected = QUERIES[name]
    args = arguments(await _running_fire(owner))

    tenant_indexes, tenant_scans = await _plan(tenant, name, *args)
    owner_indexes, _ = await _plan(owner, name, *args)

    assert tenant_scans == [], f"{name} scans {tenant_scans} under the tenant role"
    assert expected <= tenant_indexes
    assert tenant_indexes == owner_indexes
    # The policy did apply: one InitPlan calls the namespace function.
    assert "agentclusters_tenant_namespace()" in await _text_plan(tenant, name, *args)


async def _text_plan(conn: asyncpg.Connection, name: str, *args: object) -> str:
    rows = await conn.fetch(f"EXPLAIN (VERBOSE) {queries.SQL[name]}", *args)
    return "\n".join(row[0] for row in rows)
