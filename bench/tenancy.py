"""What row-level security costs the hot path: the claim and completion queries run as the
tables' owner (no policy applies) and as the namespace's own role (every statement filtered
by `namespace = (SELECT agentclusters_tenant_namespace())`, migration 0004), side by side.

The same loop as `claims` (ClaimFires for one fire, commit, CompleteFire, commit, on one
connection per claimer) drains the same pre-inserted fires once per role, the two roles
interleaved round by round so machine noise hits both alike; rates are medians. Each drain
also checks that every fire was claimed exactly once. Run: `python -m bench --only tenancy`.
"""

from __future__ import annotations

import functools
from typing import Any

import asyncpg

from agent_api.db import tenants
from bench import claims, environment


async def _tenant_url(owner_url: str) -> str:
    """The URL the operator would hand the benchmark's namespace (its own role)."""
    password = tenants.new_password()
    conn = await asyncpg.connect(owner_url)
    try:
        role = await tenants.ensure_role(conn, claims.NAMESPACE, password)
    finally:
        await conn.close()
    return tenants.tenant_url(owner_url, role, password)


async def run(bench: environment.Bench) -> dict[str, Any]:
    fires = 500 if bench.quick else 2000
    levels = [1, 4] if bench.quick else [1, 2, 4]
    rounds = 1 if bench.quick else 5
    owner_url = await bench.fresh_database("bench_tenancy")
    tenant_url = await _tenant_url(owner_url)
    owner = await asyncpg.create_pool(owner_url, min_size=max(levels), max_size=max(levels))
    tenant = await asyncpg.create_pool(tenant_url, min_size=max(levels), max_size=max(levels))
    try:
        rows = []
        for level in levels:
            # Seeding and clearing go through the owner (they touch every row); only the
            # claimers' statements run as the role under test.
            (as_tenant, as_owner), exactly_once = await claims.interleaved(
                [functools.partial(claims.drain_with, pool, claims.CLAIM_SKIP_LOCKED, level, fires,
                                   setup=owner)
                 for pool in (tenant, owner)], rounds)
            rows.append(claims.compared(level, ("tenant", as_tenant), ("owner", as_owner), exactly_once))
            print(f"  tenancy {level} claimers: owner {rows[-1]['owner_median']:,.0f}/s, "
                  f"tenant role {rows[-1]['tenant_median']:,.0f}/s", flush=True)
    finally:
        await owner.close()
        await tenant.close()
    return {"benchmark": "tenancy", "command": bench.command("tenancy"),
            "parameters": {"fires": fires, "claimers": levels, "rounds": rounds,
                           "claim_batch": claims.BATCH},
            "rows": rows}
