"""What one chat turn costs PostgreSQL, counted by the server itself: its statement log.

The replica logs in with its namespace's role (row-level security on, as the operator hands
it out); that role alone gets `log_statement = all`, and every log line carries the role and
the virtual transaction id (`%v`), so the lines a turn leaves say how many statements it ran
and in how many transactions. Counted on a warm replica (every pooled connection has already
prepared the turn's statements), after a first exchange, so the turn reads a memory that is
there and trims it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import pytest

from agent_api.db import cluster_store, tenants
from devcluster import services
from tests.integration.runtime import harness
from tests.integration.runtime.ai.test_chat import ServedReplica

# A turn's whole budget: the run recorded as running (with the memory and the system prompt
# read in the same statement), then the reply's memory written and the run finished in one
# statement, one transaction. Before: 9 statements (BEGIN and COMMIT included) in 5 transactions.
MAX_STATEMENTS = 2
LOG_PREFIX = "stmt-log %u %v|"
# `execute <name>: <query>` (extended protocol, what asyncpg sends) or `statement: <query>`.
_LOGGED = re.compile(r"^stmt-log (?P<role>\S+) (?P<vxid>\S+)\|LOG:\s+(?:statement|execute [^:]*): (?P<sql>.*)$")


def _echo_spec(memory_max_tokens: int = 8000) -> dict:
    return {"replicas": 1, "ai": {"provider": "echo", "model": "echo"},
            "limits": {"leaseSeconds": 5, "memoryMaxTokens": memory_max_tokens}}


class StatementLog:
    """The lines PostgreSQL logged for one role, read from a byte offset of the server log."""

    def __init__(self, server: services.Postgres, role: str) -> None:
        self._path = Path(server.data_dir) / "postgres.log"
        self._role = role
        self._offset = 0

    def mark(self) -> None:
        self._offset = self._path.stat().st_size

    def since_mark(self) -> list[tuple[str, str]]:
        """(virtual transaction id, statement) for each statement the role ran since `mark`."""
        with self._path.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode(errors="replace")
        found: list[tuple[str, str]] = []
        ours = False
        for line in text.splitlines():
            logged = _LOGGED.match(line)
            if logged:
                ours = logged["role"] == self._role
                if ours:
                    found.append((logged["vxid"], logged["sql"]))
            elif ours and line.startswith("\t"):  # a multi-line statement goes on
                vxid, sql = found[-1]
                found[-1] = (vxid, f"{sql}\n{line[1:]}")
            else:
                ours = False
        return found


@pytest.fixture
async def logged_tenant(private_postgres: services.Postgres) -> tuple[str, StatementLog]:
    """A migrated database on a server of this test's own, its tenant role's URL, and that
    role's statement log."""
    admin = await asyncpg.connect(private_postgres.url)
    try:
        await admin.execute('CREATE DATABASE "chat_statements"')
        await admin.execute(f"ALTER SYSTEM SET log_line_prefix = '{LOG_PREFIX}'")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()
    database_url = private_postgres.url_for("chat_statements")
    url = await harness.tenant_url(database_url)
    role, _ = tenants.url_credentials(url)
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'ALTER ROLE "{role}" SET log_statement = \'all\'')
        await cluster_store.write_config(admin, harness.NAMESPACE, harness.CLUSTER, 1,
                                         _echo_spec(memory_max_tokens=100))
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the reload reaches the postmaster's children asynchronously
    return url, StatementLog(private_postgres, role)


def _listing(statements: list[tuple[str, str]]) -> str:
    """One line per statement: its transaction and its first line (the query's name)."""
    return "\n".join(f"{vxid} {sql.splitlines()[0][:80]}" for vxid, sql in statements)


async def _warm_turns(replica: ServedReplica, conversation: str, turns: int) -> None:
    for n in range(turns):
        status, body = await replica.chat(f"warm-up {n} " + "x" * 80, conversation)
        assert status == 200, body


async def test_a_chat_turn_runs_at_most_two_statements(logged_tenant):
    url, log = logged_tenant
    replica = await ServedReplica(url, "amber-ant", runtime_pool=True).start()
    try:
        await _warm_turns(replica, "counted", 8)  # every pooled connection has prepared the turn
        log.mark()
        status, body = await replica.chat("count me", "counted")
        await asyncio.sleep(0.2)  # the server writes its log asynchronously
        statements = log.since_mark()
    finally:
        await replica.close()
    assert status == 200 and body["reply"].startswith("echo: count me [")
    assert len(statements) <= MAX_STATEMENTS, _listing(statements)


async def test_a_chat_turn_writes_its_memory_and_finishes_its_run_in_one_transaction(logged_tenant):
    url, log = logged_tenant
    replica = await ServedReplica(url, "amber-ant", runtime_pool=True).start()
    try:
        await _warm_turns(replica, "counted", 8)
        log.mark()
        status, body = await replica.chat("count me", "counted")
        await asyncio.sleep(0.2)
        statements = log.since_mark()
    finally:
        await replica.close()
    assert status == 200, body
    writes = [(vxid, sql) for vxid, sql in statements
              if re.search(r"\b(INSERT INTO conversation_turns|DELETE FROM conversation_turns|UPDATE runs)\b", sql)]
    assert writes, _listing(statements)
    assert len({vxid for vxid, _ in writes}) == 1, _listing(writes)
    transactions = {vxid for vxid, _ in statements}
    assert len(transactions) <= 2, _listing(statements)
