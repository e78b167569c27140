"""Scheduling on real PostgreSQL with several in-process replicas (own pools) and a fake clock.

The fake clock is injected into every query (`coalesce($n, now())`), so lease expiry and
missed fires are reached by advancing it, not by waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
from collections import Counter

import pytest

from agent_runtime import fires
from tests.integration.runtime import harness
from tests.integration.runtime.harness import CLUSTER, NAMESPACE, FakeClock, Replica

START = dt.datetime(2030, 1, 1, 12, 0, 0, 500_000, tzinfo=dt.UTC)


async def _replicas(database_url, spec, names, clock):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, spec)
    replicas = [await Replica(database_url, name, clock, ordinal=i).start()
                for i, name in enumerate(names)]
    await asyncio.gather(*(r.tick() for r in replicas))  # the schedule lanes start now
    return replicas


async def _step(replicas, clock, seconds=1.0):
    """Advance the clock, let every replica tick at once, and wait for their runs."""
    clock.advance(seconds)
    await asyncio.gather(*(r.tick() for r in replicas))
    await asyncio.gather(*(r.settle() for r in replicas))


async def _close(replicas):
    for replica in replicas:
        await replica.close()


async def _runs(database_url):
    return await harness.fetch(database_url, "SELECT * FROM runs ORDER BY id")


async def _fires_due_by(database_url, now):
    """The fires whose time has come; later ones are planned ahead and still available."""
    return await harness.fetch(database_url, "SELECT * FROM fires WHERE fire_time <= $1 "
                               "ORDER BY fire_time, replica", now)


async def test_single_mode_each_fire_runs_exactly_once_across_five_replicas(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with([harness.python_function("echo", "async_echo")],
                             [harness.schedule("every-second", "echo")])
    replicas = await _replicas(database_url, spec, [f"r{i}" for i in range(5)], clock)
    try:
        for _ in range(40):
            await _step(replicas, clock)
    finally:
        await _close(replicas)
    fire_rows = await _fires_due_by(database_url, clock())
    runs = await _runs(database_url)
    times = [f["fire_time"] for f in fire_rows]
    assert len(times) == 40
    assert all(b - a == dt.timedelta(seconds=1) for a, b in itertools.pairwise(times))
    assert {f["status"] for f in fire_rows} == {"succeeded"}
    assert Counter(r["fire_id"] for r in runs) == {f["id"]: 1 for f in fire_rows}
    assert {r["status"] for r in runs} == {"succeeded"}
    assert len({r["replica"] for r in runs}) > 1  # the work really was shared


async def test_cluster_mode_runs_each_fire_once_on_every_replica(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("echo", "async_echo")],
        [harness.schedule("everywhere", "echo", mode="cluster"),
         harness.schedule("once", "echo")],
    )
    names = ["r0", "r1", "r2"]
    replicas = await _replicas(database_url, spec, names, clock)
    try:
        for _ in range(10):
            await _step(replicas, clock)
    finally:
        await _close(replicas)
    runs = await _runs(database_url)
    cluster_runs = Counter((r["fire_time"], r["replica"]) for r in runs
                           if r["schedule"] == "everywhere")
    fire_times = {t for t, _ in cluster_runs}
    assert len(fire_times) == 10
    assert cluster_runs == {(t, n): 1 for t in fire_times for n in names}
    single_runs = Counter(r["fire_time"] for r in runs if r["schedule"] == "once")
    assert len(single_runs) == 10 and set(single_runs.values()) == {1}


async def test_expired_lease_is_taken_over_and_the_stale_completion_is_rejected(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("slow", "sleepy")],
        [harness.schedule("job", "slow", payload={"seconds": 0, "slow_replica": "zombie",
                                                  "slow_seconds": 1.5})],
    )
    zombie, rescuer = await _replicas(database_url, spec, ["zombie", "rescuer"], clock)
    try:
        clock.advance(1)
        await zombie.tick()  # zombie claims the first fire and starts its 1.5 s run
        assert len(zombie.scheduler.in_flight) == 1
        zombie.scheduler._renewer = None  # a frozen process renews nothing
        clock.advance(5)  # past the 2 s lease
        await rescuer.tick()
        await rescuer.settle()
        await zombie.settle()  # the zombie wakes up and tries to complete
    finally:
        await _close([zombie, rescuer])
    first = (await harness.fetch(database_url, "SELECT * FROM fires ORDER BY fire_time"))[0]
    runs = await harness.fetch(database_url, "SELECT * FROM runs WHERE fire_id = $1 ORDER BY id",
                               first["id"])
    assert first["status"] == "succeeded" and first["lease_owner"] == "rescuer"
    assert first["attempt"] == 2
    assert [(r["replica"], r["status"]) for r in runs] == [("zombie", "rejected"),
                                                          ("rescuer", "succeeded")]
    # Closed when the rescuer took the fire over; the zombie's late completion changed nothing.
    assert "taken over by rescuer" in runs[0]["error"]


async def test_stale_token_renewal_and_completion_are_rejected_and_own_retry_is_not(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with([harness.python_function("echo", "async_echo")],
                             [harness.schedule("job", "echo")])
    (replica,) = await _replicas(database_url, spec, ["r0"], clock)
    try:
        clock.advance(1)
        policy = fires.FailurePolicy("continue", 3, 1.0)
        (old,) = await fires.claim(replica.pool, NAMESPACE, CLUSTER, "a", 1, [], 2, clock())
        clock.advance(3)
        (new,) = await fires.claim(replica.pool, NAMESPACE, CLUSTER, "b", 1, [], 2, clock())
        pool = replica.pool
        stale_renewed = await fires.renew(pool, [(old.id, old.lease_token)], "a", 2, clock())
        wrong_owner = await fires.renew(pool, [(new.id, new.lease_token)], "a", 2, clock())
        stale = await fires.complete(pool, old, "succeeded", None, None, policy, clock())
        # The live token from the wrong replica is no completion either.
        impostor = await fires.complete(pool, dataclasses.replace(new, owner="a"), "succeeded",
                                        None, None, policy, clock())
        live = await fires.complete(pool, new, "succeeded", None, None, policy, clock())
        # A retry after a lost reply: the same token, the same outcome, already committed.
        retried = await fires.complete(pool, new, "succeeded", None, None, policy, clock())
        stale_after_finish = await fires.complete(pool, old, "succeeded", None, None, policy,
                                                  clock())
        other_outcome = await fires.complete(pool, new, "failed", "boom", None, policy, clock())
        status = await pool.fetchval("SELECT status FROM fires WHERE id = $1", new.id)
        run_rows = await pool.fetch("SELECT replica, status FROM runs WHERE fire_id = $1 "
                                    "ORDER BY id", new.id)
    finally:
        await _close([replica])
    assert new.id == old.id and new.lease_token != old.lease_token
    assert stale_renewed == set() and wrong_owner == set()
    assert [c.verdict for c in (stale, impostor, live, retried, stale_after_finish,
                                other_outcome)] == [
        "rejected", "rejected", "accepted", "already", "rejected", "rejected"]
    assert status == "succeeded"
    assert [tuple(r) for r in run_rows] == [("a", "rejected"), ("b", "succeeded")]


async def test_busy_replica_leaves_the_next_fire_to_a_free_one(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("slow", "sleepy")],
        [harness.schedule("a", "slow", payload={"seconds": 1}),
         harness.schedule("b", "slow", cron="*/2 * * * * *", payload={"seconds": 0})],
        maxConcurrentRuns=1,
    )
    busy, free = await _replicas(database_url, spec, ["busy", "free"], clock)
    try:
        clock.advance(1)  # 12:00:01.5: only schedule a has a fire
        await busy.tick()
        assert len(busy.scheduler.in_flight) == 1
        clock.advance(1)  # 12:00:02.5: b fires; busy is at its limit
        await busy.tick()
        assert len(busy.scheduler.in_flight) == 1
        await free.tick()
        await asyncio.gather(busy.settle(), free.settle())
    finally:
        await _close([busy, free])
    runs = await _runs(database_url)
    b_runs = [r["replica"] for r in runs if r["schedule"] == "b"]
    assert b_runs == ["free"]
    assert next(r["replica"] for r in runs if r["schedule"] == "a") == "busy"


async def test_overlapping_fire_of_a_running_schedule_is_skipped(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with([harness.python_function("slow", "sleepy")],
                             [harness.schedule("job", "slow", payload={"seconds": 1})])
    a, b = await _replicas(database_url, spec, ["a", "b"], clock)
    try:
        clock.advance(1)
        await a.tick()
        clock.advance(1)
        await b.tick()  # the second fire is due while the first still runs
        assert len(b.scheduler.in_flight) == 0
        await a.settle()
    finally:
        await _close([a, b])
    rows = await _fires_due_by(database_url, clock())
    assert [r["status"] for r in rows] == ["succeeded", "skipped"]
    assert rows[1]["error"].startswith("overlap")


async def test_allow_overlap_runs_fires_concurrently(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("slow", "sleepy")],
        [harness.schedule("job", "slow", allowOverlap=True, payload={"seconds": 0.5})],
    )
    a, b = await _replicas(database_url, spec, ["a", "b"], clock)
    try:
        clock.advance(1)
        await a.tick()
        clock.advance(1)
        await b.tick()
        # Both runs are executing at this moment: the second did not wait for the first.
        assert (len(a.scheduler.in_flight), len(b.scheduler.in_flight)) == (1, 1)
        await asyncio.gather(a.settle(), b.settle())
    finally:
        await _close([a, b])
    rows = await _fires_due_by(database_url, clock())
    assert [r["status"] for r in rows] == ["succeeded", "succeeded"]


@pytest.mark.parametrize(
    ("policy", "expected_minutes"),
    [("skip", [10]), ("runOnce", [9, 10]), ("backfill", [6, 7, 8, 9, 10])],
)
async def test_missed_fire_policy(database_url, policy, expected_minutes):
    clock = FakeClock(dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=dt.UTC))
    spec = harness.spec_with(
        [harness.python_function("echo", "async_echo")],
        [harness.schedule("minutely", "echo", cron="* * * * *", missedFirePolicy=policy,
                          backfillLimit=4)],
    )
    (replica,) = await _replicas(database_url, spec, ["r0"], clock)
    try:
        await replica.tick()  # the lane starts here; nothing is due yet
        clock.now = dt.datetime(2030, 1, 1, 12, 10, 5, tzinfo=dt.UTC)  # down for ~10 minutes
        await replica.tick()
        while replica.scheduler.in_flight:
            await replica.settle()
            await replica.tick()
    finally:
        await _close([replica])
    rows = await _fires_due_by(database_url, clock())
    ran = [r["fire_time"].minute for r in rows if r["status"] == "succeeded"]
    missed = [r["fire_time"].minute for r in rows if r["status"] == "missed"]
    assert ran == expected_minutes
    # Every other fire of the outage is recorded as missed, with a run row list_runs shows.
    assert missed == [m for m in range(1, 11) if m not in expected_minutes]
    missed_runs = [r for r in await _runs(database_url) if r["status"] == "missed"]
    assert sorted(r["fire_time"].minute for r in missed_runs) == missed
    assert all("missed: not started within 10 s" in r["error"] for r in missed_runs)


async def test_failure_policy_disables_schedule_after_n_consecutive_failures(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("broken", "fail")],
        [harness.schedule("job", "broken",
                          failurePolicy={"action": "disable", "maxConsecutiveFailures": 3})],
    )
    (replica,) = await _replicas(database_url, spec, ["r0"], clock)
    try:
        for _ in range(8):
            await _step([replica], clock)
    finally:
        await _close([replica])
    rows = await harness.fetch(database_url, "SELECT status, error FROM fires ORDER BY fire_time")
    lane = (await harness.fetch(database_url, "SELECT * FROM schedule_lanes"))[0]
    assert [r["status"] for r in rows][:3] == ["failed"] * 3
    # The fires planned ahead are cancelled by the disable, and none is planned after it.
    assert {(r["status"], r["error"]) for r in rows[3:]} == {
        ("cancelled", "cancelled: the schedule was disabled by its failurePolicy")}
    assert lane["disabled_at"] is not None
    assert lane["disabled_reason"] == "disabled after 3 consecutive failures"


async def test_failure_policy_backoff_skips_fires_inside_the_backoff_window(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("broken", "fail")],
        [harness.schedule("job", "broken",
                          failurePolicy={"action": "backoff", "backoffSeconds": 4})],
    )
    (replica,) = await _replicas(database_url, spec, ["r0"], clock)
    try:
        for _ in range(12):
            await _step([replica], clock)
    finally:
        await _close([replica])
    rows = await harness.fetch(database_url, "SELECT fire_time FROM fires WHERE fire_time <= $1 "
                               "AND status <> 'cancelled' ORDER BY 1", clock())
    # :01 fails at :01.5 -> no fire before :05.5; :06 fails at :06.5 -> backoff doubles to 8 s,
    # so nothing more before :14.5 (the test stops at :12.5)
    assert [r["fire_time"].second for r in rows] == [1, 6]


async def test_bad_schedules_are_errored_and_the_others_keep_running(database_url):
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("echo", "async_echo")],
        [harness.schedule("bad-cron", "echo", cron="61 * * * *"),
         harness.schedule("bad-zone", "echo", timezone="Mars/Olympus"),
         harness.schedule("no-function", "missing"),
         harness.schedule("good", "echo")],
    )
    (replica,) = await _replicas(database_url, spec, ["r0"], clock)
    try:
        for _ in range(3):
            await _step([replica], clock)
    finally:
        await _close([replica])
    lanes = {r["schedule"]: r["error"] for r in
             await harness.fetch(database_url, "SELECT schedule, error FROM schedule_lanes")}
    runs = await _runs(database_url)
    assert "not a valid cron expression" in lanes["bad-cron"]
    assert 'unknown time zone "Mars/Olympus"' in lanes["bad-zone"]
    assert "function 'missing' is not defined" in lanes["no-function"]
    assert lanes["good"] is None
    assert [r["schedule"] for r in runs] == ["good"] * 3


async def test_a_replica_never_claims_a_fire_it_is_still_running(database_url):
    """After a pause longer than the lease (PostgreSQL unreachable, the renewer starved), the
    replica's own expired lease must not be handed back to it as a second, concurrent run."""
    clock = FakeClock(START)
    spec = harness.spec_with(
        [harness.python_function("slow", "sleepy")],
        [harness.schedule("job", "slow", payload={"seconds": 3})], maxAttempts=5)
    (replica,) = await _replicas(database_url, spec, ["r0"], clock)
    try:
        clock.advance(1)
        await replica.tick()  # claims the 12:00:01 fire and starts its 3 s run
        (running,) = replica.scheduler.in_flight.values()
        clock.advance(5)  # past the 2 s lease, nothing renewed it
        await replica.tick()
        await replica.tick()
        in_flight = [e.claim.id for e in replica.scheduler.in_flight.values()]
        runs = await harness.fetch(database_url, "SELECT * FROM runs WHERE fire_id = $1",
                                   running.claim.id)
        attempt = await replica.pool.fetchval("SELECT attempt FROM fires WHERE id = $1",
                                              running.claim.id)
    finally:
        await _close([replica])
    assert in_flight.count(running.claim.id) == 1
    assert len(runs) == 1 and attempt == 1
