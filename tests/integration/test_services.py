"""The project-owned PostgreSQL, PgBouncer and Redis the suite runs on are real servers."""

import asyncio
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis


async def test_postgres_supports_skip_locked(database_url: str):
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE t (id int primary key)")
        await conn.execute("INSERT INTO t VALUES (1), (2)")
        async with conn.transaction():
            rows = await conn.fetch("SELECT id FROM t ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1")
        assert [r["id"] for r in rows] == [1]
    finally:
        await conn.close()


async def test_redis_answers(redis_url: str):
    client = aioredis.from_url(redis_url)
    try:
        await client.set("k", "v", ex=5)
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


async def test_pgbouncer_pools_transactions_in_front_of_postgres(database_url, pgbouncer_server):
    database = urlsplit(database_url).path.lstrip("/")
    # What the runtime's pool sends: PgBouncer ignores these startup parameters, not refuse.
    conn = await asyncpg.connect(pgbouncer_server.url_for(database), statement_cache_size=0,
                                 server_settings={"idle_in_transaction_session_timeout": "5000",
                                                  "statement_timeout": "10000"})
    try:
        assert await conn.fetchval("SELECT current_database()") == database
        async with conn.transaction():
            await conn.execute("CREATE TABLE t (id int)")
            await conn.execute("INSERT INTO t VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 1
        # Between transactions the server connection stays in PgBouncer's pool, logged in as
        # postgres; our client holds none of it.
        direct = await asyncpg.connect(database_url)
        try:
            assert await direct.fetch("SELECT usename, state FROM pg_stat_activity WHERE datname = $1"
                                      " AND pid <> pg_backend_pid()", database) == [("postgres", "idle")]
        finally:
            await direct.close()
        # A transaction left idle is ended by PgBouncer (idle_transaction_timeout).
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            async with conn.transaction():
                await conn.execute("SELECT 1")
                await asyncio.sleep(pgbouncer_server.idle_transaction_timeout + 5)
                await conn.execute("SELECT 1")
    finally:
        conn.terminate()
