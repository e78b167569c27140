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
        await cluster_store.archive_members(conn, "ns", "c", ["daring-duck"])
        await cluster_store.archive_members(conn, "ns", "c", ["daring-duck"])
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
        await cluster_store.archive_members(conn, "ns", "c", ["daring-duck"])
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
        await cluster_store.archive_members(conn, "ns", "a", ["old-owl"])
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


async def test_names_of_a_cluster_deleted_with_state_policy_delete_stay_taken(database_url):
    """statePolicy Delete removes the members' rows; their names must stay taken, or a cluster
    recreated under the same name (same candidate sequence) gets them again, with whatever is
    still stored under them (conversation turns, channel deliveries)."""
    conn = await _connect(database_url)
    try:
        await cluster_store.register_member(conn, "ns", "c", "daring-duck", 0)
        await cluster_store.register_member(conn, "ns", "c", "old-owl", 1)
        await cluster_store.archive_members(conn, "ns", "c", ["old-owl"])
        await cluster_store.delete_cluster_data(conn, "ns", "c")

        taken_by_new_c = await cluster_store.names_taken(conn, "ns", "c")
        taken_by_other = await cluster_store.names_taken(conn, "ns", "other")
        members_left = await conn.fetchval("SELECT count(*) FROM cluster_members")
    finally:
        await conn.close()
    assert taken_by_new_c == taken_by_other == {"daring-duck", "old-owl"}
    assert members_left == 0


async def test_next_ordinal_continues_after_every_archived_or_retired_member(database_url):
    conn = await _connect(database_url)
    try:
        fresh = await cluster_store.next_ordinal(conn, "ns", "c", 0)
        await cluster_store.register_member(conn, "ns", "c", "daring-duck", 0)
        await cluster_store.register_member(conn, "ns", "c", "old-owl", 1)
        await cluster_store.archive_members(conn, "ns", "c", ["old-owl"])
        # A recreated cluster (status.nextOrdinal 0) starts after the archived ordinal 1.
        after_archive = await cluster_store.next_ordinal(conn, "ns", "c", 0)
        # An unarchived row not in status is a pending allocation: it does not move the ordinal.
        await cluster_store.register_member(conn, "ns", "c", "pending-pig", 7)
        with_pending = await cluster_store.next_ordinal(conn, "ns", "c", 2)
        await cluster_store.delete_cluster_data(conn, "ns", "c")
        after_delete = await cluster_store.next_ordinal(conn, "ns", "c", 0)
        ahead_in_status = await cluster_store.next_ordinal(conn, "ns", "c", 12)
    finally:
        await conn.close()
    assert (fresh, after_archive, with_pending, after_delete, ahead_in_status) == (0, 2, 2, 8, 12)


async def _archive_many(conn, cluster: str, count: int) -> None:
    for ordinal in range(count):
        await cluster_store.register_member(conn, "ns", cluster, f"name-{ordinal}", ordinal)
        await cluster_store.archive_members(conn, "ns", cluster, [f"name-{ordinal}"])


async def test_newest_archived_is_the_newest_few_oldest_first_with_the_total(database_url):
    conn = await _connect(database_url)
    try:
        await _archive_many(conn, "c", 30)
        await cluster_store.register_member(conn, "ns", "c", "live-lynx", 30)
        await _archive_many(conn, "other", 3)
        newest, total = await cluster_store.newest_archived(conn, "ns", "c", 20)
        none, zero = await cluster_store.newest_archived(conn, "ns", "empty", 20)
    finally:
        await conn.close()
    assert [a.ordinal for a in newest] == list(range(10, 30))
    assert total == 30
    assert (none, zero) == ([], 0)


async def test_archived_pages_walk_every_archived_member_once_newest_first(database_url):
    conn = await _connect(database_url)
    try:
        await _archive_many(conn, "c", 25)
        seen: list[int] = []
        after = None
        while page := await cluster_store.archived_page(conn, "ns", "c", 10, after):
            seen += [a.ordinal for a in page]
            after = (page[-1].ordinal, page[-1].replica)
        count = await cluster_store.archived_count(conn, "ns", "c")
    finally:
        await conn.close()
    assert seen == list(range(24, -1, -1))
    assert count == 25


async def _registered(conn) -> set[tuple[str, str]]:
    return {(r["cluster"], r["replica"]) for r in await conn.fetch("SELECT cluster, replica FROM cluster_members")}


async def test_register_members_registers_a_batch_and_redoing_it_changes_nothing(database_url):
    conn = await _connect(database_url)
    try:
        batch = [(f"name-{i}", i) for i in range(50)]
        await cluster_store.register_members(conn, "ns", "c", batch)
        # A pass whose status write did not land allocates the same names again.
        await cluster_store.register_members(conn, "ns", "c", batch)
        rows = await conn.fetch("SELECT replica, ordinal, archived_at FROM cluster_members ORDER BY ordinal")
    finally:
        await conn.close()
    assert [(r["replica"], r["ordinal"]) for r in rows] == batch
    assert all(r["archived_at"] is None for r in rows)


async def test_register_members_is_all_or_nothing_when_one_name_is_taken(database_url):
    """One taken name refuses the whole batch: a partly registered allocation would leave
    names that no status shows, and a status that shows names registered nowhere."""
    conn = await _connect(database_url)
    try:
        await cluster_store.register_member(conn, "ns", "other", "old-owl", 0)
        await cluster_store.register_member(conn, "ns", "c", "gone-gnu", 0)
        await cluster_store.archive_members(conn, "ns", "c", ["gone-gnu"])
        await cluster_store.register_member(conn, "ns", "retired", "past-puma", 0)
        await cluster_store.delete_cluster_data(conn, "ns", "retired")
        before = await _registered(conn)
        refusals = []
        # Taken by another live cluster, archived in this very cluster, retired by a Delete.
        for taken in ("old-owl", "gone-gnu", "past-puma"):
            try:
                await cluster_store.register_members(conn, "ns", "c", [("new-newt", 1), (taken, 2), ("next-nag", 3)])
            except cluster_store.NamesTaken as refused:
                refusals.append(str(refused))
        after = await _registered(conn)
    finally:
        await conn.close()
    assert after == before
    assert len(refusals) == 3
    assert all(taken in refusal for taken, refusal in zip(("old-owl", "gone-gnu", "past-puma"), refusals,
                                                           strict=True))


async def test_concurrent_batches_of_one_namespace_never_register_one_name_twice(database_url):
    """Two allocations that read the namespace's names before either registered (two clusters
    allocating at once, or a stale leader next to a new one) picked the same name: the batch
    that comes second is refused whole, so no name belongs to two clusters."""
    first = await _connect(database_url)
    second = await asyncpg.connect(database_url)
    try:
        transaction = first.transaction()
        await transaction.start()
        # The first batch is registered but not yet committed when the second one runs.
        await cluster_store.register_members(first, "ns", "a", [("brave-otter", 0), ("a-only", 1)])
        racing = asyncio.create_task(
            cluster_store.register_members(second, "ns", "b", [("b-only", 0), ("brave-otter", 1)]))
        await asyncio.sleep(0.5)
        await transaction.commit()
        try:
            await asyncio.wait_for(racing, 10)
            outcome = "registered"
        except cluster_store.NamesTaken:
            outcome = "refused"
        owners = await first.fetch("SELECT cluster FROM cluster_members WHERE replica = 'brave-otter'")
        registered = await _registered(first)
    finally:
        await first.close()
        await second.close()
    assert outcome == "refused"
    assert [r["cluster"] for r in owners] == ["a"]
    assert registered == {("a", "brave-otter"), ("a", "a-only")}


async def test_archive_members_archives_the_batch_and_frees_what_each_held(database_url):
    conn = await _connect(database_url)
    try:
        await cluster_store.register_members(conn, "ns", "c", [("keep-kiwi", 0), ("go-gnu", 1), ("go-gar", 2)])
        for owner, mode, replica in (("go-gnu", "single", ""), ("keep-kiwi", "single", ""),
                                     ("go-gar", "cluster", "go-gar"), ("keep-kiwi", "cluster", "keep-kiwi")):
            await conn.execute(
                "INSERT INTO fires (namespace, cluster, schedule, fire_time, mode, function, status,"
                " attempt, lease_owner, lease_token, lease_expires_at, replica)"
                " VALUES ('ns', 'c', $1, now(), $2, 'f', 'running', 1, $3, 7,"
                " now() + interval '1 minute', $4)", f"s-{owner}-{mode}", mode, owner, replica)
        await cluster_store.archive_members(conn, "ns", "c", ["go-gnu", "go-gar"])
        await cluster_store.archive_members(conn, "ns", "c", ["go-gnu", "go-gar"])  # idempotent
        archived = {r["replica"]: r["archived_at"] is not None
                    for r in await conn.fetch("SELECT replica, archived_at FROM cluster_members")}
        fires = {r["schedule"]: r["status"] for r in await conn.fetch("SELECT schedule, status FROM fires")}
    finally:
        await conn.close()
    assert archived == {"keep-kiwi": False, "go-gnu": True, "go-gar": True}
    assert fires == {"s-go-gnu-single": "available", "s-keep-kiwi-single": "running",
                     "s-go-gar-cluster": "cancelled", "s-keep-kiwi-cluster": "running"}
