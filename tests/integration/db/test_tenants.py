"""Tenant roles on a real server: created least-privileged, mapped to their namespace, given a
password PostgreSQL only ever sees as a SCRAM verifier, and refused when tampered with."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from agent_api.db import migrate, tenants


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    await migrate.apply(conn)
    try:
        yield conn
    finally:
        await conn.close()


async def _login(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT session_user")
    finally:
        await conn.close()


async def test_role_is_a_plain_login_role_in_the_tenant_group_mapped_to_its_namespace(admin):
    role = await tenants.ensure_role(admin, "team-a", tenants.new_password())

    found = await admin.fetchrow(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,"
        " rolinherit, array(SELECT g.rolname::text FROM pg_auth_members m"
        " JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid) AS member_of"
        " FROM pg_roles r WHERE rolname = $1", role)
    assert dict(found) == {"rolcanlogin": True, "rolsuper": False, "rolcreatedb": False,
                           "rolcreaterole": False, "rolreplication": False,
                           "rolbypassrls": False, "rolinherit": True,
                           "member_of": [tenants.GROUP_ROLE]}
    assert await admin.fetchval("SELECT namespace FROM tenant_roles WHERE role_name = $1",
                                role) == "team-a"
    assert role == tenants.role_name(await admin.fetchval("SELECT current_database()"), "team-a")


async def test_password_logs_in_and_a_new_one_replaces_it(admin, database_url):
    first, second = tenants.new_password(), tenants.new_password()
    role = await tenants.ensure_role(admin, "team-a", first)
    assert await _login(tenants.tenant_url(database_url, role, first)) == role

    assert await tenants.ensure_role(admin, "team-a", second) == role

    assert await _login(tenants.tenant_url(database_url, role, second)) == role
    with pytest.raises(asyncpg.InvalidPasswordError):
        await _login(tenants.tenant_url(database_url, role, first))


async def test_the_plaintext_password_never_reaches_the_server_or_its_log(
        admin, database_url, postgres_server):
    password = tenants.new_password()
    log = postgres_server.data_dir / "postgres.log"
    logged_before = log.stat().st_size
    await admin.execute("SET log_statement = 'all'")  # log every statement this session sends

    role = await tenants.ensure_role(admin, "team-a", password)

    stored = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    assert stored.startswith("SCRAM-SHA-256$4096:")
    with log.open("rb") as logged:
        logged.seek(logged_before)
        text = logged.read().decode(errors="replace")
    assert f'ALTER ROLE {role} WITH LOGIN PASSWORD' in text  # the log did record the DDL
    assert password not in text


async def test_verifier_is_the_one_postgresql_computes_for_the_same_salt(admin):
    role = f"probe_{uuid.uuid4().hex[:12]}"
    # The one place a plaintext goes to the server: PostgreSQL's own verifier to compare with.
    await admin.execute(f"CREATE ROLE {role} PASSWORD 'pencil-pencil-pencil'")
    try:
        stored = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    finally:
        await admin.execute(f"DROP ROLE {role}")
    iterations, salt = stored.split("$")[1].split(":")

    ours = tenants.scram_sha256_verifier("pencil-pencil-pencil", salt=base64.b64decode(salt),
                                         iterations=int(iterations))

    assert ours == stored


async def test_ensure_is_idempotent_and_safe_when_concurrent(admin, database_url):
    password = tenants.new_password()
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        roles = await asyncio.gather(*(tenants.ensure_role(c, "team-a", password) for c in conns))
    finally:
        for conn in conns:
            await conn.close()

    assert len(set(roles)) == 1
    assert await admin.fetchval("SELECT count(*) FROM tenant_roles") == 1
    assert await _login(tenants.tenant_url(database_url, roles[0], password)) == roles[0]


async def test_longest_namespace_gets_a_valid_role(admin, database_url):
    namespace = "n" * 62 + "0"
    password = tenants.new_password()

    role = await tenants.ensure_role(admin, namespace, password)

    assert await _login(tenants.tenant_url(database_url, role, password)) == role


@pytest.mark.parametrize("tampering", ["SUPERUSER", "BYPASSRLS", "CREATEROLE", "NOINHERIT"])
async def test_a_tampered_role_is_refused_with_what_to_do(admin, tampering):
    role = await tenants.ensure_role(admin, "team-a", tenants.new_password())
    await admin.execute(f'ALTER ROLE "{role}" {tampering}')

    with pytest.raises(tenants.TenantRoleError, match=f"{role} .*namespace team-a.*DROP ROLE"):
        await tenants.ensure_role(admin, "team-a", tenants.new_password())


async def test_a_role_given_other_memberships_is_refused(admin):
    role = await tenants.ensure_role(admin, "team-a", tenants.new_password())
    await admin.execute(f'GRANT pg_read_all_data TO "{role}"')

    with pytest.raises(tenants.TenantRoleError, match="membership in pg_read_all_data"):
        await tenants.ensure_role(admin, "team-a", tenants.new_password())


async def test_a_namespace_maps_to_the_newest_role_only(admin, database_url):
    """A stale mapping (a role made under an earlier name of the database) loses the namespace."""
    stale = f"agentclusters_t_{uuid.uuid4().hex[:20]}"
    await admin.execute("INSERT INTO tenant_roles (role_name, namespace) VALUES ($1, 'team-a')",
                        stale)

    role = await tenants.ensure_role(admin, "team-a", tenants.new_password())

    assert [tuple(r) for r in await admin.fetch("SELECT role_name, namespace FROM tenant_roles")] \
        == [(role, "team-a")]


async def test_invalid_namespace_and_weak_password_are_refused_before_any_sql(admin):
    with pytest.raises(ValueError, match="not a Kubernetes namespace name"):
        await tenants.ensure_role(admin, "Team_A", tenants.new_password())
    with pytest.raises(ValueError, match="at least 16 printable ASCII"):
        await tenants.ensure_role(admin, "team-a", "short")


async def test_the_documented_operator_role_needs_no_superuser(postgres_server):
    """docs/operations.md: a LOGIN CREATEROLE role owning the database migrates it and creates
    the namespaces' roles; nothing needs a superuser."""
    suffix = uuid.uuid4().hex[:10]
    operator_role, database = f"op_{suffix}", f"t_op_{suffix}"
    password, tenant_password = tenants.new_password(), tenants.new_password()
    admin = await asyncpg.connect(postgres_server.url)
    await admin.execute(f"CREATE ROLE {operator_role} LOGIN CREATEROLE NOSUPERUSER"
                        f" PASSWORD '{password}'")
    await admin.execute(f'CREATE DATABASE "{database}" OWNER {operator_role}')
    base = postgres_server.url_for(database)
    try:
        operator = await asyncpg.connect(tenants.tenant_url(base, operator_role, password))
        try:
            assert not await operator.fetchval("SELECT rolsuper FROM pg_roles"
                                               " WHERE rolname = current_user")
            await migrate.apply(operator)
            role = await tenants.ensure_role(operator, "team-a", tenant_password)
            await operator.execute("INSERT INTO agent_state (namespace, cluster, replica, key,"
                                   " value, size_bytes) VALUES ('team-a', 'c', '', 'k', '1', 1),"
                                   " ('team-b', 'c', '', 'k', '1', 1)")
        finally:
            await operator.close()
        tenant = await asyncpg.connect(tenants.tenant_url(base, role, tenant_password))
        try:
            seen = await tenant.fetch("SELECT namespace FROM agent_state")
        finally:
            await tenant.close()
        assert [r["namespace"] for r in seen] == ["team-a"]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f"DROP ROLE IF EXISTS {operator_role}")
        await admin.close()
