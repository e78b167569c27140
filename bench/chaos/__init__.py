"""`make chaos`: the soak that judges the scheduler's promises under faults, from outside.

A devcluster with the real operator, replica pods, PostgreSQL and Redis; 5 replicas run 20
single-mode and 5 cluster-mode schedules firing every second, each calling an `http`
function that works 0-3 s at an independent recorder; a seeded driver SIGKILLs, freezes and
deletes replicas, scales the cluster between 3 and 7, restarts PostgreSQL, Redis and the
operator once each and blackholes the replicas' PostgreSQL for longer than the lease. The
figures (fires due, completed, missed, duplicate and concurrent executions, re-executions
and their causes, fencing, failover times, cluster-mode coverage, names) are counted from
the recorder and the fault log (`analysis.py`). docs/chaos.md says how to read them.

Modules: `stack` (the system under test), `recorder`, `faults` and `driver` (the chaos),
`soak` (one run), `analysis` (the counting), `render` (RESULTS.md section and the plot).
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


async def run(bench: Any) -> dict[str, Any]:
    """`python -m bench --only chaos`: the soak as one of the benchmarks (1 minute with
    `--quick`, else the default 10), on a devcluster of its own."""
    import asyncio

    from bench.chaos import __main__ as cli

    minutes = 1.0 if bench.quick else 10.0
    return await asyncio.to_thread(cli.soak_result, minutes, 1, cli.DEFAULT_LEASE)
