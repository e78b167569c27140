"""A runtime never changes the schema: against a database the operator has not migrated yet it
waits, says what it waits for, and starts once the migrations are in."""

from __future__ import annotations

import random

from agent_api.db import migrate
from devcluster import ports
from tests.integration.runtime import harness
from tests.integration.runtime.harness import RuntimeProcess


async def _ledger_exists(database_url: str) -> bool:
    rows = await harness.fetch(database_url, "SELECT to_regclass('schema_migrations') AS t")
    return rows[0]["t"] is not None


async def test_runtime_waits_for_the_migrations_and_never_applies_them(
        database_url, redis_url, tmp_path):
    pod_ip = f"127.0.{random.randint(2, 200)}.2"
    # Even with the privileged URL: applying migrations is the operator's job alone.
    process = RuntimeProcess(database_url, redis_url, "r0", pod_ip, ports.free_port(pod_ip),
                             tmp_path)
    try:
        async def waiting_or_migrated():
            """the runtime either said it waits for migrations or created the ledger itself"""
            return "waiting for the operator" in process.log() or await _ledger_exists(database_url)

        await harness.wait_for(waiting_or_migrated, within=60)
        assert not await _ledger_exists(database_url), (
            f"the runtime migrated the database itself:\n{process.log()[-2000:]}")
        needed = len(migrate.load_migrations())
        assert f"waiting for the operator to apply migration {needed}" in process.log()
        assert "agentclusters migrate" in process.log()
        assert process.process.poll() is None

        await harness.migrated(database_url)  # what the operator (or `agentclusters migrate`) does

        async def started():
            """the runtime started once the migrations were in"""
            return '"runtime started"' in process.log()

        await harness.wait_for(started, within=60)
    finally:
        process.kill()
