"""Apply pending schema migrations, safely from any number of processes at once.

The operator calls `apply()` at start, before it serves anything, with its privileged role;
`agentclusters migrate` is the manual path. Runtime replicas never migrate (their roles may
not run DDL): they wait until `current_version()` reaches `latest_version()`. One transaction
holds a transaction-level `pg_advisory_xact_lock` and applies every pending file with its
`schema_migrations` row: concurrent callers wait for the lock, then find nothing left, and a
failing file leaves nothing half-applied. Transaction-scoped, so it also holds through
PgBouncer in transaction pooling mode (a session lock would not: the session is not ours).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constant shared by every process that migrates this schema.
ADVISORY_LOCK_KEY = 0x4A67_436C  # "JgCl"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


_LEDGER_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_APPLIED_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a gap or a stray file name is an error."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise ValueError(f"migration versions must be 1..N without gaps; found {migration}")
    return found


def latest_version() -> int:
    """The schema version this code needs: its newest migration."""
    return load_migrations()[-1].version


async def current_version(conn: asyncpg.Connection) -> int:
    """The newest migration applied to the database, 0 if none (read-only, any role with
    SELECT on schema_migrations)."""
    if not await conn.fetchval(_LEDGER_EXISTS):
        return 0
    return await conn.fetchval(_APPLIED_VERSION)


async def apply(conn: asyncpg.Connection) -> list[int]:
    """Apply every pending migration; return the versions this call applied."""
    migrations = load_migrations()
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
        await conn.execute(_CREATE_LEDGER)
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version, migration.name,
            )
            applied_now.append(migration.version)
    return applied_now


async def apply_url(url: str) -> list[int]:
    """`apply()` on a connection of its own to `url`."""
    conn = await asyncpg.connect(url)
    try:
        return await apply(conn)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    """`agentclusters migrate`: apply pending migrations to $DATABASE_URL (the operator's
    privileged URL: migrations create tables, roles, policies and grants)."""
    parser = argparse.ArgumentParser(prog="agentclusters migrate", description=main.__doc__)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("set DATABASE_URL or pass --database-url")
    applied = asyncio.run(apply_url(args.database_url))
    print(f"applied migrations: {applied or 'none (schema up to date)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
