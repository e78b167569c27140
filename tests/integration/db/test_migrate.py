"""Migrations: idempotent, safe under concurrent starts, and equal to schema.sql (tables,
indexes, row-level security policies and grants)."""

from __future__ import annotations

import asyncio
import glob
import subprocess

import asyncpg

from agent_api.db import migrate

SCHEMA_SQL = migrate.MIGRATIONS_DIR.parent / "schema.sql"


async def test_second_migrate_applies_nothing(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrate.apply(conn)
        second = await migrate.apply(conn)
        recorded = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert first == [m.version for m in migrate.load_migrations()]
    assert second == []
    assert [r["version"] for r in recorded] == first


async def test_concurrent_migrate_calls_apply_each_migration_once(database_url):
    conns = [await asyncpg.connect(database_url) for _ in range(8)]
    try:
        results = await asyncio.gather(*(migrate.apply(c) for c in conns))
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for conn in conns:
            await conn.close()
    applied = [v for result in results for v in result]
    assert sorted(applied) == [m.version for m in migrate.load_migrations()]
    assert count == len(migrate.load_migrations())


def _dump(url: str) -> str:
    pg_dump = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))[-1]
    # Privileges included: the tenant group's grants are part of the schema's contract.
    out = subprocess.run([pg_dump, "--schema-only", "--no-owner", url],
                         check=True, capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines()
                     if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict")))


async def test_migrated_schema_equals_schema_sql(database_url, postgres_server):
    conn = await asyncpg.connect(database_url)
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()
    admin = await asyncpg.connect(postgres_server.url)
    await admin.execute('CREATE DATABASE "schema_sql_reference"')
    await admin.close()
    reference_url = postgres_server.url_for("schema_sql_reference")
    try:
        ref = await asyncpg.connect(reference_url)
        try:
            await ref.execute(SCHEMA_SQL.read_text())
        finally:
            await ref.close()
        migrated = _dump(database_url)
        assert migrated == _dump(reference_url)
        # The comparison covers row-level security and the grants, not only the tables.
        assert migrated.count("ENABLE ROW LEVEL SECURITY") == 8
        assert migrated.count("CREATE POLICY tenant_namespace") == 8
        assert "GRANT SELECT ON TABLE public.cluster_configs TO agentclusters_tenant;" in migrated
    finally:
        admin = await asyncpg.connect(postgres_server.url)
        await admin.execute('DROP DATABASE IF EXISTS "schema_sql_reference" WITH (FORCE)')
        await admin.close()
