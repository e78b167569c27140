"""Runtime processes behind PgBouncer in transaction pooling mode (Debian's package).

`AGENT_DATABASE_POOLING=transaction`: no statement cache, no startup parameters, no LISTEN.
The runtimes log in with their namespace's own role, as the operator hands it to them
(PgBouncer authenticates it with SCRAM against the verifier it looks up in PostgreSQL, then
logs in to PostgreSQL as that role, so row-level security applies). The schema check,
planning, claiming, leases, completion, config changes and the shutdown drain all go through
the pooler; the database never sees a runtime connect to it directly.
"""

from __future__ import annotations

import asyncio
import glob
import signal
import subprocess
from collections import Counter

from agent_api.db import tenants
from tests.integration.runtime import harness
from tests.integration.runtime.harness import CLUSTER, NAMESPACE

THROUGH_PGBOUNCER = {"AGENT_DATABASE_POOLING": "transaction",
                     "AGENT_CONFIG_POLL_SECONDS": "1", "AGENT_SCHEDULER_POLL_SECONDS": "1"}


def _pgbouncer_show(pgbouncer, what: str) -> list[dict[str, str]]:
    """`SHOW <what>` on PgBouncer's admin console (simple protocol only: psql)."""
    psql = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
    out = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(pgbouncer.port), "-U", "postgres",
                          "-d", "pgbouncer", "-A", "-F", "\t", "-c", f"SHOW {what}"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    header = out[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in out[1:]
            if "\t" in line]


async def test_replicas_schedule_exactly_once_through_pgbouncer_in_transaction_mode(
        database_url, pgbouncer_server, spawn):
    database = database_url.rsplit("/", 1)[1]
    # The operator's part: migrations and the namespace's role, on the direct URL.
    role, password = tenants.url_credentials(await harness.tenant_url(database_url))
    pgbouncer_server.install_auth_lookup(database)  # the DBA's part, once per database
    pooled_url = tenants.tenant_url(pgbouncer_server.url_for(database), role, password)
    function = harness.python_function("echo", "async_echo")
    processes = [spawn(f"r{i}", pooled_url, tenant=False, **THROUGH_PGBOUNCER)
                 for i in range(3)]
    await harness.write_spec(database_url, 1, harness.spec_with(
        [function], [harness.schedule("single", "echo"),
                     harness.schedule("everywhere", "echo", mode="cluster")]))

    async def running():
        """single-mode fires succeed and every replica ran cluster-mode fires"""
        single = await harness.fetch(database_url, "SELECT 1 FROM fires WHERE schedule = "
                                     "'single' AND status = 'succeeded'")
        replicas = await harness.fetch(database_url, "SELECT DISTINCT replica FROM fires WHERE "
                                       "schedule = 'everywhere' AND status = 'succeeded'")
        return len(single) >= 5 and len(replicas) == 3

    await harness.wait_for(running, within=60)
    clients = [c for c in _pgbouncer_show(pgbouncer_server, "CLIENTS")
               if c["database"] == database]
    backends = await harness.fetch(database_url, "SELECT client_port FROM pg_stat_activity "
                                   "WHERE datname = $1 AND pid <> pg_backend_pid()", database)
    servers = {int(s["local_port"]) for s in _pgbouncer_show(pgbouncer_server, "SERVERS")}
    # A change without NOTIFY (no LISTEN through the pooler) arrives by polling.
    await harness.write_spec(database_url, 2, harness.spec_with(
        [function], [harness.schedule("single", "echo"),
                     harness.schedule("everywhere", "echo", mode="cluster"),
                     harness.schedule("witness", "echo")]))

    async def witness_runs():
        """the new spec reached the runtimes by polling and its schedule runs"""
        rows = await harness.fetch(database_url, "SELECT 1 FROM fires WHERE schedule = "
                                   "'witness' AND status = 'succeeded'")
        return len(rows) >= 2

    await harness.wait_for(witness_runs, within=60)
    for process in processes:
        process.signal(signal.SIGTERM)
    codes = await asyncio.gather(*(p.wait(within=60) for p in processes))
    assert codes == [0, 0, 0], [p.log()[-2000:] for p in processes]

    fires = await harness.fetch(database_url, "SELECT * FROM fires WHERE namespace = $1 AND "
                                "cluster = $2", NAMESPACE, CLUSTER)
    runs = await harness.fetch(database_url, "SELECT * FROM runs")
    done = [f["id"] for f in fires if f["status"] == "succeeded"]
    assert Counter(r["fire_id"] for r in runs) == {i: 1 for i in done}
    assert {r["status"] for r in runs} == {"succeeded"}
    assert not [f for f in fires if f["status"] == "running"]
    # Each runtime held PgBouncer client connections; none reached PostgreSQL directly:
    # every backend of this database belongs to PgBouncer's server pool.
    assert {c["user"] for c in clients} == {role} and len(clients) >= 3
    assert {b["client_port"] for b in backends} <= servers
    for process in processes:
        assert "prepared statement" not in process.log()
