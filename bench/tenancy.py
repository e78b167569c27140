"""What row-level security costs the hot path: the claim and completion queries run as the
tables' owner (no policy applies) and as the namespace's own role (every statement filtered
by `namespace = (SELECT agentclusters_tenant_namespace())`, migration 0004), side by side.

The same loop as `claims` (ClaimFires for one fire, commit, CompleteFire, commit, on one
connection per claimer) drains the same pre-inserted fires once per role, the two roles
interleaved round by round so machine noise hits both alike; rates are medians. Each drain
also checks that every fire was claimed exactly once. Run: `python -m bench --only tenancy`.
"""

from __future__ import annotations

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
            as_owner: list[float] = []
            as_tenant: list[float] = []
            exactly_once = True
            for _ in range(rounds):
                for pool, rates in ((owner, as_owner), (tenant, as_tenant)):
                    # Seeding and clearing go through the owner (they touch every row);
                    # only the claimers' statements run as the role under test.
                    rate, once = await claims.drain_with(pool, claims.CLAIM_SKIP_LOCKED, level, fires,
                                                         setup=owner)
                    rates.append(rate)
                    exactly_once = exactly_once and once
            rows.append({"claimers": level, "owner_per_second": as_owner,
                         "tenant_per_second": as_tenant,
                         "owner_median": environment.median(as_owner),
                         "tenant_median": environment.median(as_tenant),
                         "ratio_median": environment.median(
                             [t / o for t, o in zip(as_tenant, as_owner, strict=True)]),
                         "exactly_once": exactly_once})
            print(f"  tenancy {level} claimers: owner {rows[-1]['owner_median']:,.0f}/s, "
                  f"tenant role {rows[-1]['tenant_median']:,.0f}/s", flush=True)
    finally:
        await owner.close()
        await tenant.close()
    return {"benchmark": "tenancy", "command": bench.command("tenancy"),
            "parameters": {"fires": fires, "claimers": levels, "rounds": rounds,
                           "claim_batch": claims.BATCH},
            "rows": rows}
