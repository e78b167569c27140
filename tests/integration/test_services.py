"""The project-owned PostgreSQL and Redis the suite runs on are real servers."""

import asyncpg
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
