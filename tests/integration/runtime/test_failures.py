"""The runtime's promise under failure, with real `python -m agent_runtime` processes.

PostgreSQL restarted mid-run, Redis gone and back, a replica frozen (SIGSTOP) past its lease
and thawed, and a config change applied without a restart. Every wait polls with a deadline;
no assertion depends on how long something took.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import signal
from collections import Counter
from collections.abc import Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from agent_api import redis_keys
from agent_api.db import cluster_store
from agent_runtime import database
from agent_runtime import main as runtime_main
from devcluster import ports, services
from tests.integration.runtime import harness
from tests.integration.runtime.harness import CLUSTER, NAMESPACE, RuntimeProcess

SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[services.Redis]:
    server = services.Redis(tmp_path / "redis", ports.free_port()).start()
    yield server
    server.stop()


async def _rows(database_url, query, *args):
    return await harness.fetch(database_url, query, *args)


async def _db_now(database_url) -> dt.datetime:
    return (await _rows(database_url, "SELECT now() AS now"))[0]["now"]


async def _stop_all(processes: list[RuntimeProcess]) -> None:
    for process in processes:
        process.signal(signal.SIGTERM)
    codes = {p.replica: await p.wait(within=60) for p in processes}
    assert codes == {p.replica: 0 for p in processes}, {p.replica: p.log() for p in processes}


def _assert_contiguous(times: list[dt.datetime]) -> None:
    gaps = [(a, b) for a, b in itertools.pairwise(sorted(times)) if b - a != SECOND]
    assert not gaps, f"fire times are not one second apart: {gaps}"


def _assert_no_live_rows(fires, runs) -> None:
    assert not [f for f in fires if f["status"] == "running"], "a fire was left running"
    assert not [r for r in runs if r["status"] == "running"], "a run was left running"


def _assert_each_succeeded_once(fires, runs) -> None:
    """Every fire ran exactly once: one run, succeeded, on the fire's replica (cluster mode)."""
    by_fire = Counter(r["fire_id"] for r in runs)
    succeeded = Counter(r["fire_id"] for r in runs if r["status"] == "succeeded")
    done = [f for f in fires if f["status"] == "succeeded"]
    assert succeeded == {f["id"]: 1 for f in done}
    assert {i: by_fire[i] for i in succeeded} == {f["id"]: 1 for f in done}, "a fire ran twice"
    owners = {r["fire_id"]: r["replica"] for r in runs}
    assert all(owners[f["id"]] == f["replica"] for f in done if f["mode"] == "cluster")


# -- PostgreSQL restart ----------------------------------------------------------------------


async def test_runtimes_reconnect_after_postgres_restart_and_no_fire_runs_twice(
        private_postgres, spawn):
    database_url = private_postgres.url
    await harness.migrated(database_url)
    # A generous lease: the restart must not expire it, so no fire is legitimately re-run.
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("work", "sleepy")],
        [harness.schedule("single", "work", allowOverlap=True, missedFireGraceSeconds=60,
                          payload={"seconds": 0.3}),
         harness.schedule("everywhere", "work", mode="cluster", allowOverlap=True,
                          missedFireGraceSeconds=60, payload={"seconds": 0.3})],
        leaseSeconds=20))
    # Config polling effectively off: a change after the restart must arrive by NOTIFY, so
    # the listening connection has to come back on its own.
    processes = [spawn(f"r{i}", database_url, AGENT_CONFIG_POLL_SECONDS="600")
                 for i in range(2)]

    async def succeeded_after(since: dt.datetime, schedule: str, count: int) -> bool:
        rows = await _rows(database_url, "SELECT 1 FROM fires WHERE schedule = $1 AND "
                           "status = 'succeeded' AND fire_time > $2", schedule, since)
        return len(rows) >= count

    async def warmed_up():
        """three single-mode fires succeeded before the restart"""
        return await succeeded_after(dt.datetime.min.replace(tzinfo=dt.UTC), "single", 3)

    await harness.wait_for(warmed_up, within=60)
    offsets = [len(p.log()) for p in processes]
    private_postgres.stop()

    async def noticed():
        """both runtimes noticed PostgreSQL is gone"""
        return all("failed" in p.log()[o:] for p, o in zip(processes, offsets, strict=True))

    await harness.wait_for(noticed, within=30)
    private_postgres.start()
    restarted = await _db_now(database_url)

    async def resumed():
        """schedules run again after the restart, in both modes, on both replicas"""
        rows = await _rows(database_url, "SELECT DISTINCT replica FROM fires WHERE "
                           "mode = 'cluster' AND status = 'succeeded' AND fire_time > $1",
                           restarted)
        return (len(rows) == 2 and await succeeded_after(restarted, "single", 3))

    await harness.wait_for(resumed, within=60)

    conn = await asyncpg.connect(database_url)
    try:
        await cluster_store.write_config(conn, NAMESPACE, CLUSTER, 2, harness.spec_with(
            [harness.python_function("work", "sleepy")],
            [harness.schedule("single", "work", allowOverlap=True, missedFireGraceSeconds=60,
                              payload={"seconds": 0.3}),
             harness.schedule("everywhere", "work", mode="cluster", allowOverlap=True,
                              missedFireGraceSeconds=60, payload={"seconds": 0.3}),
             harness.schedule("added-after-restart", "work", payload={"seconds": 0})],
            leaseSeconds=20))
    finally:
        await conn.close()

    async def new_config_runs():
        """the config written after the restart reached the runtimes (NOTIFY) and runs"""
        return await succeeded_after(restarted, "added-after-restart", 2)

    await harness.wait_for(new_config_runs, within=30)
    stopping = await _db_now(database_url)
    await _stop_all(processes)

    fires = await _rows(database_url, "SELECT * FROM fires ORDER BY fire_time, replica")
    runs = await _rows(database_url, "SELECT * FROM runs")
    _assert_no_live_rows(fires, runs)
    _assert_each_succeeded_once(fires, runs)
    assert {f["status"] for f in fires} <= {"succeeded", "available"}
    # No fire lost across the outage: every lane's fire times are one second apart.
    lanes: dict[tuple[str, str], list[dt.datetime]] = {}
    for f in fires:
        lanes.setdefault((f["schedule"], f["replica"]), []).append(f["fire_time"])
    assert set(lanes) >= {("single", ""), ("everywhere", "r0"), ("everywhere", "r1")}
    for times in lanes.values():
        _assert_contiguous(times)
    # The fires due across the outage ran (only the last few may be left unclaimed; later
    # ones were planned ahead and are still waiting for their time).
    assert all(f["status"] == "succeeded" for f in fires if f["fire_time"] < stopping - 5 * SECOND)


# -- Redis outage ----------------------------------------------------------------------------


async def test_redis_outage_never_stops_schedules_and_the_registry_entry_returns(
        database_url, private_redis, spawn):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("echo", "async_echo")],
        [harness.schedule("every-second", "echo")]))
    process = spawn("r0", database_url, redis=private_redis.url)
    key = redis_keys.replica_key(NAMESPACE, CLUSTER, "r0")

    async def registered():
        """the replica is registered in Redis"""
        client = aioredis.from_url(private_redis.url)
        try:
            return (await client.hgetall(key)).get(b"ready") == b"1"
        finally:
            await client.aclose()

    await harness.wait_for(registered, within=30)
    private_redis.stop()
    outage = await _db_now(database_url)

    async def ran_without_redis():
        """three fires planned after Redis went away succeeded, and the heartbeat failed"""
        rows = await _rows(database_url, "SELECT 1 FROM fires WHERE status = 'succeeded' "
                           "AND fire_time > $1", outage)
        return len(rows) >= 3 and "Redis heartbeat failed" in process.log()

    await harness.wait_for(ran_without_redis, within=30)
    private_redis.start()  # a fresh, empty Redis on the same port
    await harness.wait_for(registered, within=30)  # the next heartbeat writes it back
    await _stop_all([process])

    fires = await _rows(database_url, "SELECT * FROM fires ORDER BY fire_time")
    runs = await _rows(database_url, "SELECT * FROM runs")
    _assert_no_live_rows(fires, runs)
    _assert_each_succeeded_once(fires, runs)
    _assert_contiguous([f["fire_time"] for f in fires])  # schedules never stopped
    assert {f["status"] for f in fires} <= {"succeeded", "available"}


# -- freeze and thaw -------------------------------------------------------------------------


async def test_frozen_replica_is_taken_over_and_its_late_completion_is_rejected(
        database_url, spawn):
    await harness.one_fire_due_now(database_url, "frozen", slow_seconds=1, lease_seconds=5)
    frozen = spawn("frozen", database_url)

    async def running():
        """the frozen replica started the run"""
        rows = await _rows(database_url, "SELECT 1 FROM runs WHERE replica = 'frozen'")
        return len(rows) == 1

    await harness.wait_for(running, within=30)
    frozen.signal(signal.SIGSTOP)
    rescuer = spawn("rescuer", database_url)

    async def taken_over():
        """the rescuer ran the fire after the frozen replica's lease expired"""
        rows = await _rows(database_url, "SELECT status, lease_owner, attempt FROM fires")
        return dict(rows[0]) == {"status": "succeeded", "lease_owner": "rescuer", "attempt": 2}

    await harness.wait_for(taken_over, within=30)
    # Thawed, the frozen replica either completes (its 1 s function is overdue by now) and the
    # fenced completion names a stale token, or its lease renewal fires first, matches nothing
    # and cancels the run. Both are the same answer: the late run is recorded as rejected.
    frozen.signal(signal.SIGCONT)

    async def frozen_run_recorded():
        """the thawed replica recorded its run"""
        rows = await _rows(database_url,
                           "SELECT status FROM runs WHERE replica = 'frozen'")
        return rows[0]["status"] != "running"

    await harness.wait_for(frozen_run_recorded, within=30)
    await _stop_all([frozen, rescuer])

    fire = (await _rows(database_url, "SELECT * FROM fires"))[0]
    runs = await _rows(database_url, "SELECT * FROM runs ORDER BY id")
    assert [(r["replica"], r["attempt"], r["status"]) for r in runs] == [
        ("frozen", 1, "rejected"), ("rescuer", 2, "succeeded")]
    stale, winner = runs
    assert stale["lease_token"] < winner["lease_token"] == fire["lease_token"]
    assert "lease expired on attempt 1" in stale["error"]
    assert "taken over by rescuer" in stale["error"]
    # The fire's final state is the takeover's, untouched by the late completion.
    assert (fire["status"], fire["lease_owner"], fire["attempt"], fire["error"]) == (
        "succeeded", "rescuer", 2, None)
    assert fire["finished_at"] <= winner["finished_at"]
    # Its log says which of the three noticed first: the fenced completion, the renewal the
    # fencing token rejected, or its own deadline passed while it was stopped.
    assert any(line in frozen.log() for line in (
        "late completion rejected", "run rejected: lease lost", "run rejected: self-fenced"))


# -- config change without restart -----------------------------------------------------------


async def test_config_change_reaches_a_running_process_by_notify(database_url, spawn):
    await harness.migrated(database_url)
    function = harness.python_function("echo", "async_echo")
    await harness.write_spec(database_url, 1, harness.spec_with(
        [function], [harness.schedule("report", "echo")]))
    # Polling effectively off: only the NOTIFY can deliver the change within the deadline.
    process = spawn("r0", database_url, AGENT_CONFIG_POLL_SECONDS="600")

    async def count(schedule: str) -> int:
        rows = await _rows(database_url, "SELECT 1 FROM fires WHERE schedule = $1 AND "
                           "status = 'succeeded'", schedule)
        return len(rows)

    async def report_runs():
        """the every-second schedule runs"""
        return await count("report") >= 2

    await harness.wait_for(report_runs, within=30)
    conn = await asyncpg.connect(database_url)
    try:
        # Same schedule, new cron (yearly), plus a witness that proves the new spec is live.
        assert await cluster_store.write_config(conn, NAMESPACE, CLUSTER, 2, harness.spec_with(
            [function], [harness.schedule("report", "echo", cron="0 0 1 1 *"),
                         harness.schedule("witness", "echo")]))
        # An older generation is refused and changes nothing.
        assert not await cluster_store.write_config(conn, NAMESPACE, CLUSTER, 1,
                                                    harness.spec_with([function], []))
    finally:
        await conn.close()

    async def witness_runs():
        """the new spec is applied: the witness schedule ran three times"""
        return await count("witness") >= 3

    await harness.wait_for(witness_runs, within=30)
    await _stop_all([process])

    fires = await _rows(database_url, "SELECT * FROM fires ORDER BY fire_time")
    runs = await _rows(database_url, "SELECT * FROM runs")
    report = [f["fire_time"] for f in fires if f["schedule"] == "report"
              and f["status"] != "cancelled"]
    witness = [f["fire_time"] for f in fires if f["schedule"] == "witness"]
    # The old cron stopped the moment the new spec applied: no report fire ran after it (the
    # ones planned ahead from the old definition were cancelled).
    assert max(report) < min(witness)
    assert all(f["error"].startswith("cancelled: the schedule was changed") for f in fires
               if f["status"] == "cancelled")
    _assert_contiguous(report)
    _assert_contiguous(witness)
    _assert_no_live_rows(fires, runs)
    _assert_each_succeeded_once(fires, runs)
    assert "applied spec generation 2" in process.log()


# -- a connection dropped while a run is being recorded --------------------------------------

DROP_CONNECTION_ONCE = """
CREATE SEQUENCE drop_on_insert;
CREATE SEQUENCE drop_on_update;
CREATE FUNCTION drop_connection_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Sequences ignore the rollback, so each statement kind is cut off exactly once.
    IF nextval(CASE TG_OP WHEN 'INSERT' THEN 'drop_on_insert' ELSE 'drop_on_update' END) = 1
    THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER drop_connection_once BEFORE INSERT OR UPDATE ON runs
    FOR EACH ROW EXECUTE FUNCTION drop_connection_once();
"""


async def test_run_is_recorded_when_the_connection_drops_at_its_start_and_its_end(
        database_url):
    """The server kills the session in the middle of the claim (which writes the run row)
    and again of the completion (which finishes it), as a PostgreSQL restart or failover
    does to a statement in flight: the run is still recorded once, and closed; nothing is
    left `running`."""
    await harness.migrated(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(DROP_CONNECTION_ONCE)
    finally:
        await conn.close()
    await harness.write_spec(database_url, 1, harness.spec_with(
        [harness.python_function("echo", "async_echo")], [harness.schedule("job", "echo")]))
    clock = harness.FakeClock(dt.datetime(2030, 1, 1, 12, 0, 0, 500_000, tzinfo=dt.UTC))
    replica = await harness.Replica(database_url, "r0", clock).start()
    try:
        await replica.tick()  # the lane starts now
        clock.advance(1)
        # The claim writes the run row: the first claim is cut off and rolled back whole;
        # the scheduler's loop retries the pass, as here.
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            await replica.tick()
        await replica.tick()
        await replica.settle()
    finally:
        await replica.close()
    dropped = await _rows(database_url, "SELECT (SELECT last_value FROM drop_on_insert) AS i,"
                          " (SELECT last_value FROM drop_on_update) AS u")
    assert tuple(dropped[0]) == (2, 2)  # each was cut off once and then retried
    fires = await _rows(database_url, "SELECT * FROM fires WHERE fire_time <= $1", clock())
    runs = await _rows(database_url, "SELECT * FROM runs")
    assert [(f["status"], f["attempt"]) for f in fires] == [("succeeded", 1)]
    assert [(r["fire_id"], r["status"]) for r in runs] == [(fires[0]["id"], "succeeded")]


async def test_runtime_pool_ends_transactions_left_idle_by_a_frozen_replica(database_url):
    """A frozen replica must not hold a lane's row lock for longer than a few seconds: a
    transaction left idle on one of the runtime's connections is ended by the server, and
    its lock is free again for the other replicas."""
    await harness.migrated(database_url)
    pool = await runtime_main._connect_pool(database_url, asyncio.Event())
    other = await asyncpg.connect(database_url)
    try:
        await other.execute("INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, "
                            "planned_until) VALUES ('ns', 'c', 's', '', now())")
        frozen = await pool.acquire()
        await frozen.execute("BEGIN")
        await frozen.execute("SELECT 1 FROM schedule_lanes FOR UPDATE")
        # ... and now the replica does nothing (as if SIGSTOPped) while holding the lock.

        async def lock_free():
            """the idle transaction was ended and its row lock released"""
            try:
                await other.execute("SELECT 1 FROM schedule_lanes FOR UPDATE NOWAIT")
                return True
            except asyncpg.LockNotAvailableError:
                return False

        assert not await lock_free()
        await harness.wait_for(lock_free, within=30, interval=0.5)
        with pytest.raises(database.TRANSIENT):
            await frozen.execute("SELECT 1")
        await pool.release(frozen)
    finally:
        await other.close()
        await pool.close()
