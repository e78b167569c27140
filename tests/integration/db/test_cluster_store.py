"""The operator-facing store: generation-fenced config with NOTIFY, members, archive, delete."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from agent_api.db import cluster_store, migrate


async def _connect(database_url):
    conn = await asyncpg.connect(database_url)
    await migrate.apply(conn)
    return conn


async def test_write_config_writes_only_newer_generations_and_notifies(database_url):
    conn = await _connect(database_url)
    listener = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("agent_config", lambda *args: heard.put_nowait(args[3]))
    try:
        assert await cluster_store.write_config(conn, "ns", "c", 2, {"replicas": 2})
        assert not await cluster_store.write_config(conn, "ns", "c", 2, {"replicas": 9})
        assert not await cluster_store.write_config(conn, "ns", "c", 1, {"replicas": 9})
        assert await cluster_store.write_config(conn, "ns", "c", 3, {"replicas": 3})
        row = await conn.fetchrow("SELECT generation, spec FROM cluster_configs")
        first = await asyncio.wait_for(heard.get(), 5)
        second = await asyncio.wait_for(heard.get(), 5)
    finally:
        await listener.close()
        await conn.close()
    assert (row["generation"], json.loads(row["spec"])) == (3, {"replicas": 3})
    assert [first, second] == ["ns/c", "ns/c"]
    assert heard.empty()


async def test_register_member_is_idempotent_and_never_unarchives(database_url):
    conn = await _connect(database_url)
    try:
        await cluster_store.register_member(conn, "ns", "c", "daring-duck", 0)
        await cluster_store.register_member(conn, "ns", "c", "daring-duck", 0)
        await cluster_store.archive_member(conn, "ns", "c", "daring-duck")
        await cluster_store.archive_member(conn, "ns", "c", "daring-duck")
        await cluster_store.register_member(conn, "ns", "c", "daring-duck", 0)
        rows = await conn.fetch("SELECT archived_at FROM cluster_members")
    finally:
        await conn.close()
    assert len(rows) == 1 and rows[0]["archived_at"] is not None


async def test_archive_member_releases_its_single_mode_leases(database_url):
    conn = await _connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function, status,"
            " attempt, lease_owner, lease_token, lease_expires_at)"
            " VALUES ('ns', 'c', 's', now(), 'single', 'f', 'running', 1, 'daring-duck', 7,"
            " now() + interval '1 hour')"
        )
        await cluster_store.register_member(conn, "ns", "c", "daring-duck", 0)
        await cluster_store.archive_member(conn, "ns", "c", "daring-duck")
        fire = await conn.fetchrow("SELECT status, lease_owner, attempt FROM fires")
    finally:
        await conn.close()
    assert dict(fire) == {"status": "available", "lease_owner": None, "attempt": 0}


async def test_delete_cluster_data_removes_only_that_cluster(database_url):
    conn = await _connect(database_url)
    try:
        for cluster in ("c", "other"):
            await cluster_store.write_config(conn, "ns", cluster, 1, {})
            await cluster_store.register_member(conn, "ns", cluster, f"{cluster}-duck", 0)
            await conn.execute(
                "INSERT INTO agent_state (namespace, cluster, replica, key, value, size_bytes)"
                " VALUES ('ns', $1, '', 'k', '1', 1)", cluster)
        await cluster_store.delete_cluster_data(conn, "ns", "c")
        left = {
            table: await conn.fetchval(f"SELECT array_agg(DISTINCT cluster) FROM {table}")
            for table in ("cluster_configs", "cluster_members", "agent_state")
        }
    finally:
        await conn.close()
    assert left == {t: ["other"] for t in left}


async def test_names_taken_are_other_clusters_names_and_own_archived_ones(database_url):
    conn = await _connect(database_url)
    try:
        await cluster_store.register_member(conn, "ns", "a", "daring-duck", 0)
        await cluster_store.register_member(conn, "ns", "a", "old-owl", 1)
        await cluster_store.archive_member(conn, "ns", "a", "old-owl")
        await cluster_store.register_member(conn, "ns", "b", "swift-falcon", 0)
        await cluster_store.register_member(conn, "other", "c", "calm-otter", 0)

        # Cluster a's own live name is an allocation it may make again; its archived one is not.
        assert await cluster_store.names_taken(conn, "ns", "a") == {"old-owl", "swift-falcon"}
        assert await cluster_store.names_taken(conn, "ns", "b") == {"daring-duck", "old-owl"}
    finally:
        await conn.close()


async def test_archive_cluster_archives_every_live_member_once(database_url):
    conn = await _connect(database_url)
    try:
        await cluster_store.register_member(conn, "ns", "gone", "daring-duck", 0)
        await cluster_store.register_member(conn, "ns", "gone", "swift-falcon", 1)
        await cluster_store.register_member(conn, "ns", "stays", "calm-otter", 0)
        assert await cluster_store.clusters_with_live_members(conn) == {("ns", "gone"), ("ns", "stays")}

        assert sorted(await cluster_store.archive_cluster(conn, "ns", "gone")) == ["daring-duck", "swift-falcon"]
        assert await cluster_store.archive_cluster(conn, "ns", "gone") == []
        assert await cluster_store.clusters_with_live_members(conn) == {("ns", "stays")}
    finally:
        await conn.close()
