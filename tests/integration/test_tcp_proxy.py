"""The fault-injecting proxy (tests/support/tcp_proxy.py) against the real PostgreSQL.

The fault tests trust the proxy to do exactly what its modes say; these tests check each
mode with a plain asyncpg client: forwarding, a stall that hangs a query until the client's
own timeout, a drop that breaks connections, a COMMIT whose reply is lost although the
server committed, and an answer held inside a transaction until the server ends the session.
"""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest

CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.PostgresError)


@pytest.fixture
def proxy(postgres_server, proxy_to):
    return proxy_to(postgres_server.port)


async def _scalar(database_url: str, query: str):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_forwards_queries_and_transactions(database_url, proxy):
    conn = await asyncpg.connect(proxy.url(database_url), timeout=30)
    try:
        assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
        async with conn.transaction():
            await conn.execute("CREATE TABLE t (id int)")
            await conn.executemany("INSERT INTO t VALUES ($1)", [(i,) for i in range(100)])
        rows = await conn.fetch("SELECT repeat('x', 100000) AS big FROM t")  # many reads
        assert len(rows) == 100 and all(len(r["big"]) == 100000 for r in rows)
        assert proxy.connections() == 1
        assert len(proxy.upstream_ports()) == 1
    finally:
        await conn.close()


async def test_stall_hangs_a_query_until_the_client_times_out_and_resume_delivers_it(
        database_url, proxy):
    conn = await asyncpg.connect(proxy.url(database_url), timeout=30)
    try:
        proxy.stall()
        with pytest.raises(TimeoutError):
            await conn.fetchval("SELECT 1", timeout=1)
        # A new connection is accepted but gets no answer: no refusal, no error, silence.
        with pytest.raises(TimeoutError):
            await asyncpg.connect(proxy.url(database_url), timeout=1)
        # What was held back is delivered when the partition heals.
        proxy.resume()
        conn2 = await asyncpg.connect(proxy.url(database_url), timeout=30)
        proxy.stall()
        held = asyncio.create_task(conn2.fetchval("SELECT 'late'"))
        done, _ = await asyncio.wait({held}, timeout=1)
        assert not done
        proxy.resume()
        assert await asyncio.wait_for(held, 30) == "late"
        await conn2.close()
    finally:
        conn.terminate()


async def test_drop_breaks_open_connections_and_refuses_new_ones_until_resume(
        database_url, proxy):
    conn = await asyncpg.connect(proxy.url(database_url), timeout=30)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        proxy.drop()
        with pytest.raises(CONNECTION_ERRORS):
            await conn.fetchval("SELECT 1", timeout=10)
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(proxy.url(database_url), timeout=10)
        proxy.resume()
        assert await _scalar(proxy.url(database_url), "SELECT 2") == 2
    finally:
        conn.terminate()


async def test_lost_commit_reply_commits_on_the_server_and_fails_the_client(
        database_url, proxy):
    await _scalar(database_url, "CREATE TABLE t (id int)")
    conn = await asyncpg.connect(proxy.url(database_url), timeout=30)
    other = await asyncpg.connect(proxy.url(database_url), timeout=30)
    try:
        proxy.lose_reply_after(b"-- name: Mark")
        assert await other.fetchval("SELECT 1") == 1  # other statements are untouched
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            async with conn.transaction():
                # Answered: the client needs it to go on to COMMIT.
                await conn.execute("-- name: Mark\nINSERT INTO t VALUES (1)")
                await conn.execute("INSERT INTO t VALUES (2)")
        assert proxy.replies_lost.is_set()
        assert conn.is_closed()
        assert await _scalar(database_url, "SELECT array_agg(id ORDER BY id) FROM t") == [1, 2]
        # One shot: the same statement on another connection goes through.
        await other.execute("-- name: Mark\nINSERT INTO t VALUES (3)")
        assert await other.fetchval("SELECT count(*) FROM t") == 3
    finally:
        conn.terminate()
        await other.close()


async def test_lost_reply_of_an_autocommit_statement(database_url, proxy):
    await _scalar(database_url, "CREATE TABLE t (id int)")
    conn = await asyncpg.connect(proxy.url(database_url), timeout=30)
    try:
        proxy.lose_reply_after(b"-- name: Mark")
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            await conn.fetchval("-- name: Mark\nINSERT INTO t VALUES ($1) RETURNING id", 7)
        assert await _scalar(database_url, "SELECT array_agg(id) FROM t") == [7]
    finally:
        conn.terminate()


async def test_held_answer_inside_a_transaction_outlives_the_session(database_url, proxy):
    conn = await asyncpg.connect(proxy.url(database_url), timeout=30, server_settings={
        "idle_in_transaction_session_timeout": "1000"})
    admin = await asyncpg.connect(database_url)
    try:
        proxy.hold_reply_after(b"-- name: Mark")
        transaction = conn.transaction()
        await transaction.start()
        answers = []

        async def two_statements():
            answers.append(await conn.fetchval("-- name: Mark\nSELECT 1"))
            await conn.fetchval("SELECT $1::int", 2)  # next, as a transaction would

        held = asyncio.create_task(two_statements())
        await asyncio.wait_for(asyncio.to_thread(proxy.holding.wait, 30), 40)
        pid = await asyncio.wait_for(_backend_of(admin, proxy), 30)
        # The server ends the session that idles in its transaction; the client, still
        # waiting for its answer, learns nothing.
        await asyncio.wait_for(_gone(admin, pid), 30)
        assert not held.done()
        proxy.resume()
        # The answer is delivered late, followed by the server's FATAL error and the close:
        # the session is gone, and the next statement fails. (asyncpg 0.32 raises its
        # client-side InternalClientError "cannot switch to state …; another operation … is in
        # progress": the FATAL error arrived while it was idle, before it saw the close.)
        with pytest.raises((*CONNECTION_ERRORS, asyncpg.InternalClientError)):
            await asyncio.wait_for(held, 30)
        assert answers == [1]
    finally:
        conn.terminate()
        await admin.close()


async def _backend_of(admin: asyncpg.Connection, proxy) -> int:
    """The pid of the backend serving the proxy's connection, once it idles in a transaction."""
    for _ in itertools.count():
        pid = await admin.fetchval("SELECT pid FROM pg_stat_activity WHERE client_port = "
                                   "ANY($1::int[]) AND state = 'idle in transaction'",
                                   list(proxy.upstream_ports()))
        if pid is not None:
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def _gone(admin: asyncpg.Connection, pid: int) -> None:
    for _ in itertools.count():
        if not await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.1)


async def test_held_reply_of_a_committed_statement_and_a_terminated_session(database_url, proxy):
    await _scalar(database_url, "CREATE TABLE t (id int)")
    conn = await asyncpg.connect(proxy.url(database_url), timeout=30)
    admin = await asyncpg.connect(database_url)
    try:
        proxy.hold_reply_after(b"-- name: Mark")
        held = asyncio.create_task(conn.fetchval("-- name: Mark\nINSERT INTO t VALUES ($1) RETURNING id", 7))
        await asyncio.wait_for(asyncio.to_thread(proxy.holding.wait, 30), 40)
        assert await admin.fetchval("SELECT array_agg(id) FROM t") == [7]  # committed
        (port,) = proxy.held_ports()
        pid = await admin.fetchval("SELECT pid FROM pg_stat_activity WHERE client_port = $1", port)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await asyncio.wait_for(_gone(admin, pid), 30)
        assert not held.done()
        proxy.resume()
        # The answer arrives with the FATAL error and the close: the connection is unusable.
        assert await asyncio.wait_for(held, 30) == 7
        with pytest.raises((*CONNECTION_ERRORS, asyncpg.InternalClientError)):
            await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()
        await admin.close()
