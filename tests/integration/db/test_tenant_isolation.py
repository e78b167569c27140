"""A hostile tenant with only what its namespace is handed: namespace B's database credentials
reach B's rows and nothing else, in every tenant table, and allow no DDL.

The rows are seeded by the privileged role (the operator's, which owns the tables). Every test
connects with the credentials the operator hands a namespace (`handed_url`), exactly as a
function running in one of B's replicas would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from agent_api.db import migrate, tenants

A, B = "team-a", "team-b"
CLUSTER = "app"
TENANT_TABLES = ("cluster_configs", "cluster_members", "schedule_lanes", "fires", "runs",
                 "agent_state", "conversation_turns", "channel_deliveries")
INSUFFICIENT_PRIVILEGE = "42501"  # also the SQLSTATE of a row refused by a policy's WITH CHECK


_PASSWORDS: dict[str, str] = {}


async def handed_url(admin: asyncpg.Connection, database_url: str, namespace: str) -> str:
    """The DATABASE_URL the operator puts into `namespace`'s runtime Secret
    (agent_operator/credentials.py): the namespace's own role, made to exist with the Secret's
    password. (Before tenant isolation: the operator's own URL.)"""
    password = _PASSWORDS.setdefault(namespace, tenants.new_password())
    role = await tenants.ensure_role(admin, namespace, password)
    return tenants.tenant_url(database_url, role, password)


# One statement per table that writes a row naming namespace $1 (cluster $2).
INSERTS = {
    "cluster_configs": "INSERT INTO cluster_configs (namespace, cluster, generation, spec)"
                       " VALUES ($1, $2, 1, '{\"ai\": {\"baseURL\": \"https://api.example\"}}')",
    "cluster_members": "INSERT INTO cluster_members (namespace, cluster, replica, ordinal)"
                       " VALUES ($1, $2, 'r0', 0)",
    "schedule_lanes": "INSERT INTO schedule_lanes (namespace, cluster, schedule, lane,"
                      " planned_until) VALUES ($1, $2, 's', '', now())",
    "fires": "INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function)"
             " VALUES ($1, $2, 's', now(), 'single', 'f')",
    "runs": "INSERT INTO runs (namespace, cluster, replica, trigger, function)"
            " VALUES ($1, $2, 'r0', 'manual', 'f')",
    "agent_state": "INSERT INTO agent_state (namespace, cluster, replica, key, value, size_bytes)"
                   " VALUES ($1, $2, '', 'k', '1', 1)",
    "conversation_turns": "INSERT INTO conversation_turns (namespace, cluster, replica,"
                          " conversation_id, role, content, tokens)"
                          " VALUES ($1, $2, 'r0', 'c', 'user', 'hello', 2)",
    "channel_deliveries": "INSERT INTO channel_deliveries (namespace, cluster, replica, channel,"
                          " channel_type, status, attempts, message)"
                          " VALUES ($1, $2, 'r0', 'ops', 'slack', 'delivered', 1, 'hi')",
}


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The privileged role (the operator's), with the schema migrated and both namespaces'
    rows seeded in every tenant table."""
    conn = await asyncpg.connect(database_url)
    await migrate.apply(conn)
    for namespace in (A, B):
        for sql in INSERTS.values():
            await conn.execute(sql, namespace, CLUSTER)
    try:
        yield conn
    finally:
        await conn.close()


Connect = Callable[[str], Awaitable[asyncpg.Connection]]


@pytest.fixture
async def connect_as(admin: asyncpg.Connection, database_url: str) -> AsyncIterator[Connect]:
    """Connections with the credentials the operator hands a namespace; closed afterwards."""
    opened: list[asyncpg.Connection] = []

    async def connect(namespace: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(await handed_url(admin, database_url, namespace))
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        await conn.close()


async def _count(admin: asyncpg.Connection, table: str, namespace: str) -> int:
    return await admin.fetchval(f"SELECT count(*) FROM {table} WHERE namespace = $1", namespace)


async def _refused(conn: asyncpg.Connection, sql: str, *args: object) -> str | None:
    """The statement's SQLSTATE if the server refused it, None if it ran."""
    try:
        await conn.execute(sql, *args)
    except asyncpg.PostgresError as error:
        return error.sqlstate
    return None


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_b_cannot_read_a_rows(connect_as, table):
    b = await connect_as(B)

    seen = await b.fetchval(f"SELECT count(*) FROM {table} WHERE namespace = $1", A)

    assert seen == 0, f"namespace B's credentials read {seen} of namespace A's rows in {table}"


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_b_cannot_move_a_rows_into_b(admin, connect_as, table):
    b = await connect_as(B)
    before = await _count(admin, table, A)

    await _refused(b, f"UPDATE {table} SET namespace = $1, cluster = 'stolen'"
                      " WHERE namespace = $2", B, A)

    assert await _count(admin, table, A) == before == 1


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_b_cannot_delete_a_rows(admin, connect_as, table):
    b = await connect_as(B)

    await _refused(b, f"DELETE FROM {table} WHERE namespace = $1", A)

    assert await _count(admin, table, A) == 1


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_b_cannot_insert_a_row_naming_a(admin, connect_as, table):
    b = await connect_as(B)

    refused = await _refused(b, INSERTS[table], A, "planted")

    assert refused == INSUFFICIENT_PRIVILEGE
    assert await admin.fetchval(f"SELECT count(*) FROM {table} WHERE cluster = 'planted'") == 0


async def test_b_cannot_rewrite_a_stored_spec(admin, connect_as):
    """The attack of the issue: point A's replicas (and A's API key) at B's server."""
    b = await connect_as(B)

    await _refused(b, "UPDATE cluster_configs SET spec = jsonb_set(spec, '{ai,baseURL}',"
                      " '\"https://evil.example\"'), generation = generation + 1"
                      " WHERE namespace = $1", A)

    spec = json.loads(await admin.fetchval(
        "SELECT spec FROM cluster_configs WHERE namespace = $1", A))
    assert spec["ai"]["baseURL"] == "https://api.example"


@pytest.mark.parametrize("statement", [
    "CREATE TABLE public.planted (x int)",
    "CREATE TEMP TABLE planted (x int)",
    "CREATE SCHEMA planted",
    "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE VIEW public.planted AS SELECT 1 AS x",
    "CREATE INDEX planted ON fires (error)",
    "ALTER TABLE fires ADD COLUMN planted text",
    "ALTER TABLE fires DISABLE ROW LEVEL SECURITY",
    "DROP TABLE agent_state",
    "TRUNCATE runs",
    "CREATE ROLE planted LOGIN",
    "CREATE DATABASE planted",
])
async def test_b_cannot_run_ddl(connect_as, statement):
    b = await connect_as(B)

    assert await _refused(b, statement) == INSUFFICIENT_PRIVILEGE


async def test_b_cannot_pass_on_privileges(admin, connect_as):
    b = await connect_as(B)

    await _refused(b, "GRANT SELECT, UPDATE ON fires, runs, agent_state TO PUBLIC")

    granted = await admin.fetchval(
        "SELECT count(*) FROM unnest(array['fires', 'runs', 'agent_state']) AS t"
        " WHERE has_table_privilege('public', t, 'SELECT')")
    assert granted == 0


async def test_b_cannot_change_the_role_mapping(admin, connect_as):
    b = await connect_as(B)
    me = await b.fetchval("SELECT session_user")

    refused = [await _refused(b, "UPDATE tenant_roles SET namespace = $1 WHERE role_name = $2",
                              A, me),
               await _refused(b, "INSERT INTO tenant_roles (role_name, namespace) VALUES ($1, $2)",
                              "agentclusters_t_planted", A),
               await _refused(b, "DELETE FROM tenant_roles")]

    assert refused == [INSUFFICIENT_PRIVILEGE] * 3


async def test_b_cannot_become_a_role(admin, database_url, connect_as):
    role_of_a = urlsplit(await handed_url(admin, database_url, A)).username
    b = await connect_as(B)

    assert await _refused(b, f'SET ROLE "{role_of_a}"') == INSUFFICIENT_PRIVILEGE
    assert await _refused(b, f'SET SESSION AUTHORIZATION "{role_of_a}"') == INSUFFICIENT_PRIVILEGE


async def test_b_as_the_group_role_still_sees_only_b(connect_as):
    """SET ROLE to the tenant group is allowed (B is a member) and changes nothing: the policies
    look at the login role."""
    b = await connect_as(B)
    await b.execute("SET ROLE agentclusters_tenant")

    assert await b.fetchval("SELECT count(*) FROM fires WHERE namespace = $1", A) == 0
    assert await b.fetchval("SELECT count(*) FROM fires WHERE namespace = $1", B) == 1


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_b_sees_its_own_rows(connect_as, table):
    b = await connect_as(B)

    assert await b.fetchval(f"SELECT count(*) FROM {table}") == 1
    assert await b.fetchval(f"SELECT count(*) FROM {table} WHERE namespace = $1", B) == 1


@pytest.mark.parametrize("table", [t for t in TENANT_TABLES if t != "cluster_configs"])
async def test_b_writes_rows_of_its_own(admin, connect_as, table):
    b = await connect_as(B)

    await b.execute(INSERTS[table], B, "second")

    assert await admin.fetchval(f"SELECT count(*) FROM {table} WHERE namespace = $1"
                                " AND cluster = 'second'", B) == 1
