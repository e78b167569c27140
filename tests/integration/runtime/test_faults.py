"""Real faults between a replica and PostgreSQL, judged by what a function's target saw.

Each test injects one fault for real: PostgreSQL stopped (`pg_ctl stop`), a network that
goes silent or loses a COMMIT reply (tests/support/tcp_proxy.py), backends terminated by
the server. Nothing in the runtime is patched. The verdict comes from outside the system:
the `http` functions call a recorder (tests/support/recorder.py) that notes every execution
of every fire, and whether it completed or the replica hung up on it. The runtime's own
tables are checked too, after the fact, for rows left `running`.

Every wait polls with a deadline; no assertion depends on how long something took.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal

import httpx
import pytest

from tests.integration.runtime import harness
from tests.integration.runtime.harness import CLUSTER, NAMESPACE, RuntimeProcess
from tests.support import recorder as recorder_module

LEASE_SECONDS = 5.0  # the API's minimum (limits.leaseSeconds >= 5)


@pytest.fixture
def recorder():
    started = recorder_module.Recorder().start()
    yield started
    started.stop()


async def _one_fire_due_now(database_url: str, function: dict, lease_seconds: float,
                            **schedule: object) -> None:
    """A single-mode schedule `job` with exactly one fire due now: a yearly cron whose lane
    starts just before this year's fire (1 January), which is late by now and kept by
    `runOnce`."""
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [function],
        [harness.schedule("job", function["name"], cron="0 0 1 1 *", missedFirePolicy="runOnce",
                          missedFireGraceSeconds=0, **schedule)],
        leaseSeconds=lease_seconds))
    await harness.fetch(database_url,
                        "INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, "
                        "planned_until, definition_hash) "
                        "VALUES ($1, $2, 'job', '', date_trunc('year', now()) - interval '1 second', '')",
                        NAMESPACE, CLUSTER)


async def _until(condition, what: str, within: float) -> None:
    """Poll a plain (sync) condition until true; fail naming `what` otherwise."""
    async def check() -> bool:
        return bool(condition())

    check.__doc__ = what
    await harness.wait_for(check, within=within)


async def _live_rows(database_url: str) -> list[str]:
    fires = await harness.fetch(database_url, "SELECT id FROM fires WHERE status = 'running'")
    runs = await harness.fetch(database_url, "SELECT id, replica FROM runs WHERE status = 'running'")
    return [f"fire {r['id']}" for r in fires] + [f"run {r['id']} of {r['replica']}" for r in runs]


async def _until_no_live_rows(database_url: str, within: float) -> None:
    async def none_running() -> bool:
        """no fire and no run is left `running`"""
        return not await _live_rows(database_url)

    try:
        await harness.wait_for(none_running, within=within, interval=0.5)
    except AssertionError as error:
        raise AssertionError(f"{error}: {await _live_rows(database_url)}") from None


def _log_events(process: RuntimeProcess, since: int = 0) -> list[dict]:
    """The process's JSON log lines after the first `since` characters."""
    events = []
    for line in process.log()[since:].splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


# -- PostgreSQL stopped for longer than the lease --------------------------------------------


async def test_postgres_outage_longer_than_the_lease_never_runs_a_fire_twice_at_once(
        private_postgres, spawn, recorder):
    """PostgreSQL is stopped (`pg_ctl stop -m fast`) while a run is in flight, for twice the
    lease, then started again. The replica cannot renew its lease, and once the lease has
    expired the fire belongs to whoever claims it next: the replica must abort its own run
    before that (self-fencing: by its own clock, the lease less a margin; the http request is
    aborted). When PostgreSQL is back, the fire runs again to completion: exactly one
    completed execution per fire, and never two executions of one fire at the same time."""
    database_url = private_postgres.url
    await _one_fire_due_now(database_url, recorder.function("work", timeoutSeconds=120),
                            LEASE_SECONDS, payload={"seconds": 15})
    replica = spawn("r0", database_url)
    await _until(recorder.running, "the run started at the recorder", within=60)

    await asyncio.to_thread(private_postgres.stop)
    await asyncio.sleep(2 * LEASE_SECONDS + 1)
    await asyncio.to_thread(private_postgres.start)

    await _until(lambda: recorder.completions() and not recorder.running(),
                 "an execution completed and none is running", within=120)
    history = recorder.describe()
    assert not recorder.overlapping(), (f"two executions of one fire overlapped:\n{history}\n"
                                        f"--- replica log ---\n{replica.log()[-4000:]}")
    assert {k: len(recorder.completions(k)) for k in recorder.idempotency_keys()} == {
        k: 1 for k in recorder.idempotency_keys()}, f"a fire did not complete exactly once:\n{history}"
    in_flight = recorder.executions()[0]
    assert in_flight.aborted is not None and not in_flight.completed, (
        "the execution in flight during the outage ran on past its lease instead of being "
        f"aborted (self-fenced):\n{history}\n--- replica log ---\n{replica.log()[-4000:]}")
    await _until_no_live_rows(database_url, within=60)


# -- a half-open connection ------------------------------------------------------------------


async def test_half_open_connection_self_fences_and_another_replica_completes_the_fire(
        database_url, postgres_server, proxy_to, spawn, recorder):
    """Replica `a` reaches PostgreSQL through a proxy that goes silent while a's run is in
    flight (half-open: every connection stays up, nothing arrives, no error, as in a network
    partition or a host that vanished). Replica `b` is connected directly. `a` can renew its
    lease only if its queries time out: it must abort its run before its lease expires, and
    `b` runs the fire to completion. Exactly one completion, no two executions at once."""
    proxy = proxy_to(postgres_server.port)
    recorder.seconds_by_replica["a"] = 60  # b takes the payload's 2 s
    await _one_fire_due_now(database_url, recorder.function("work", timeoutSeconds=120),
                            LEASE_SECONDS, payload={"seconds": 2})
    a = spawn("a", proxy.url(database_url))
    await _until(recorder.running, "a's run started at the recorder", within=60)
    proxy.stall()
    stalled_at = len(a.log())
    b = spawn("b", database_url)

    await _until(lambda: [e for e in recorder.completions() if e.replica == "b"],
                 "b completed the fire", within=120)
    history = recorder.describe()
    assert not recorder.overlapping(), (
        f"b ran the fire while a's execution was still running:\n{history}\n"
        f"--- a's log ---\n{a.log()[-3000:]}")
    assert [e.replica for e in recorder.completions()] == ["b"], history
    ran_on_a = [e for e in recorder.executions() if e.replica == "a"]
    assert [e.aborted is not None for e in ran_on_a] == [True], history
    # `a` noticed the silence (its queries time out and it says so) instead of hanging.
    warnings = [e for e in _log_events(a, stalled_at) if e["severity"] in ("warn", "error")
                and e["logger"].startswith("agent_runtime")]
    assert warnings, f"a logged nothing while its database was unreachable:\n{a.log()[-3000:]}"

    proxy.resume()
    await _until_no_live_rows(database_url, within=90)
    assert a.process.poll() is None and b.process.poll() is None


# -- a lost COMMIT reply ---------------------------------------------------------------------


async def test_completion_retried_after_a_lost_commit_reply_counts_the_failure_once(
        database_url, postgres_server, proxy_to, spawn, recorder):
    """The replica completes a failed run (its function answered 500) and the server commits
    the completion, but the reply never reaches the replica: the proxy swallows it and closes
    the connection, as a network failure or a failover at that moment would. The replica
    retries the completion. The retry must find its own committed completion and not count
    the failure toward `failurePolicy` (`disable` after 2 in a row) a second time."""
    recorder.script(500, 500, 500)
    proxy = proxy_to(postgres_server.port)
    proxy.lose_reply_after(b"-- name: CompleteFire")
    await _one_fire_due_now(database_url, recorder.function("flaky"), 30.0,
                            failurePolicy={"action": "disable", "maxConsecutiveFailures": 2})
    replica = spawn("r0", proxy.url(database_url))

    await _until(proxy.replies_lost.is_set, "the reply to the completion was lost", within=60)
    await _until_no_live_rows(database_url, within=60)
    fires = await harness.fetch(database_url, "SELECT status, attempt FROM fires")
    assert [tuple(f) for f in fires] == [("failed", 1)]
    assert len(recorder.executions()) == 1, recorder.describe()
    lane = (await harness.fetch(database_url, "SELECT consecutive_failures, disabled_at, "
                                "disabled_reason FROM schedule_lanes WHERE schedule = 'job'"))[0]
    assert (lane["consecutive_failures"], lane["disabled_at"], lane["disabled_reason"]) == (
        1, None, None), f"one failed fire was counted twice:\n{replica.log()[-3000:]}"


# -- a session ended under a run's bookkeeping -----------------------------------------------


async def test_session_ended_under_a_runs_bookkeeping_leaves_nothing_running_and_scheduling_goes_on(
        database_url, postgres_server, proxy_to, spawn, recorder):
    """The replica claims a fire, which records its run's start (ClaimFires); the server
    commits it, and then the
    session ends (`pg_terminate_backend`, as an administrator, a failover or a pooler does)
    while the network still holds the answer back. When the path heals, the replica gets the
    answer, the server's FATAL error and the close at once, and asyncpg fails the
    connection's next use (the pool's reset when the connection is released) with its
    client-side InternalClientError. That is a database error like any other: the bookkeeping
    is retried or the fire handed back and its run closed; nothing is left `running`, no fire
    completes twice, and the replica keeps scheduling."""
    proxy = proxy_to(postgres_server.port)
    proxy.hold_reply_after(b"-- name: ClaimFires\n")
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [recorder.function("work")], [harness.schedule("job", "work", payload={"seconds": 0.2})],
        leaseSeconds=10))
    replica = spawn("r0", proxy.url(database_url))

    await _until(proxy.holding.is_set, "the answer to ClaimFires is held back", within=60)
    held = list(proxy.held_ports())  # empty if the replica gave up on it already
    await harness.fetch(database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE client_port = ANY($1::int[])", held)

    async def session_ended() -> bool:
        """the server ended the session whose answer is held back"""
        return not await harness.fetch(database_url, "SELECT 1 FROM pg_stat_activity "
                                       "WHERE client_port = ANY($1::int[])", held)

    await harness.wait_for(session_ended, within=60)
    proxy.resume()
    resumed = (await harness.fetch(database_url, "SELECT now() AS now"))[0]["now"]

    async def scheduling_goes_on() -> bool:
        """three fires planned after the fault succeeded"""
        assert replica.process.poll() is None, f"the replica exited:\n{replica.log()[-5000:]}"
        rows = await harness.fetch(database_url, "SELECT 1 FROM fires WHERE status = 'succeeded' "
                                   "AND fire_time > $1", resumed)
        return len(rows) >= 3

    await harness.wait_for(scheduling_goes_on, within=90)
    replica.signal(signal.SIGTERM)
    assert await replica.wait(within=60) == 0, replica.log()[-3000:]
    live = await _live_rows(database_url)
    assert not live, f"left running: {live}\n--- replica log ---\n{replica.log()[-5000:]}"
    history = recorder.describe()
    assert not recorder.overlapping(), history
    completed_twice = [k for k in recorder.idempotency_keys() if len(recorder.completions(k)) > 1]
    assert not completed_twice, f"completed more than once: {completed_twice}\n{history}"


# -- frozen between the claim and the function's start ---------------------------------------


async def test_replica_frozen_before_its_function_starts_never_starts_it_after_losing_the_lease(
        database_url, postgres_server, proxy_to, spawn, recorder):
    """Replica `a` has claimed the fire and is reading its state (the last step before the
    function is called) when it is frozen (SIGSTOP), the answer to that read held back by the
    network. Its lease expires and `b` takes the fire over and runs it. Then the network
    delivers the answer and `a` is thawed: the answer and `a`'s overdue local deadline are
    ready at the same instant. `a` must not call the function for a fire whose lease it no
    longer holds, whichever its event loop runs first: no execution of `a` may overlap `b`'s.
    `a` has called the recorder before (a manual run), so its HTTP session holds a warm
    keep-alive connection, as a busy replica's does: the request needs no connect.
    (Found by reasoning over the `make chaos` soak: a freeze that ends with I/O ready and a
    deadline passed together.)"""
    proxy = proxy_to(postgres_server.port)
    recorder.seconds_by_replica["b"] = 6
    await harness.migrated(database_url)
    started = asyncio.get_running_loop().time()
    now = (await harness.fetch(database_url, "SELECT now() AS now"))[0]["now"]
    due = now + dt.timedelta(seconds=40)  # room for a slow start on a loaded machine
    await harness.write_spec(database_url, 1, harness.spec_with(
        [recorder.function("work", timeoutSeconds=120)],
        [harness.schedule("job", "work", cron=f"{due.second} {due.minute} {due.hour} * * *",
                          missedFireGraceSeconds=3600, payload={"seconds": 1})],
        leaseSeconds=LEASE_SECONDS))
    # No statement cache (as behind PgBouncer), so every query's text crosses the proxy and
    # the state read can be recognised by name.
    a = spawn("a", proxy.url(database_url), AGENT_DATABASE_POOLING="transaction")
    await harness.until_serving(a, within=60)
    await asyncio.sleep(max(0.0, (due - dt.timedelta(seconds=4) - now).total_seconds()
                            - (asyncio.get_running_loop().time() - started)))
    async with httpx.AsyncClient(base_url=a.url, headers=harness.AUTH, timeout=30) as http:
        warm = await http.post("/run/work", json={"payload": {"seconds": 0}})
    assert warm.status_code == 200, warm.text
    proxy.hold_reply_after(b"-- name: ListState\n")
    await _until(proxy.holding.is_set, "a's state read for the fire is held back", within=60)
    a.signal(signal.SIGSTOP)
    try:
        spawn("b", database_url)
        await _until(lambda: _fire_executions(recorder, "b"), "b took the fire over and started it",
                     within=60)
        proxy.resume()  # the answer reaches a's socket while a is frozen
        await asyncio.sleep(0.5)
    finally:
        a.signal(signal.SIGCONT)
    await _until(lambda: [e for e in _fire_executions(recorder, "b") if e.completed],
                 "b completed the fire", within=60)
    await asyncio.sleep(1)  # anything a was going to start, it has started by now
    history = recorder.describe()
    assert not recorder.overlapping(), (
        f"a started the fire while b was running it:\n{history}\n--- a's log ---\n{a.log()[-4000:]}")
    assert [e.replica for e in _fire_executions(recorder)] == ["b"], history
    await _until_no_live_rows(database_url, within=60)


def _fire_executions(recorder, replica: str | None = None) -> list:
    """The recorder's executions of scheduled fires (not manual runs), of one replica or all."""
    return [e for e in recorder.executions() if e.key.startswith("job:")
            and replica in (None, e.replica)]


# -- the connection dropped under a run's state read -----------------------------------------


async def test_state_read_failing_on_a_dropped_connection_hands_the_fire_back_instead_of_failing_it(
        database_url, postgres_server, proxy_to, spawn, recorder):
    """The replica has claimed the fire and reads its state for the function (the last step
    before the call) when every connection to PostgreSQL is dropped. The function never ran:
    that is bookkeeping failing, not the function, so the fire must be handed back and run
    once PostgreSQL is reachable again, never recorded `failed` (which would also count
    toward the schedule's failure policy). (Found by the `make chaos` soak: one cluster-mode
    fire recorded failed during the blackhole, its function never called.)"""
    proxy = proxy_to(postgres_server.port)
    await _one_fire_due_now(database_url, recorder.function("work", timeoutSeconds=60),
                            LEASE_SECONDS, payload={"seconds": 0.2})
    proxy.hold_reply_after(b"-- name: ListState\n")
    # No statement cache (as behind PgBouncer): the state read's text crosses the proxy.
    spawn("r0", proxy.url(database_url), AGENT_DATABASE_POOLING="transaction")
    await _until(proxy.holding.is_set, "the state read is held back", within=60)
    proxy.drop()
    await asyncio.sleep(1)
    proxy.resume()
    await _until(lambda: recorder.completions(), "the fire's function ran to completion", within=90)
    await _until_no_live_rows(database_url, within=60)
    fires = await harness.fetch(database_url, "SELECT status FROM fires")
    runs = await harness.fetch(database_url, "SELECT status, error FROM runs ORDER BY id")
    assert [f["status"] for f in fires] == ["succeeded"], [dict(r) for r in runs]
    assert "failed" not in [r["status"] for r in runs], [dict(r) for r in runs]


# -- a claim whose preparation outlasts the lease ----------------------------------------------


async def test_claimed_fires_whose_state_read_outlasts_the_lease_are_handed_back_and_run(
        database_url, postgres_server, proxy_to, spawn, recorder):
    """The replica claims two fires in one batch and reads its state once for both, and that
    read's answer is held back by the network for longer than the lease. When it arrives,
    both runs are past their local deadline before they have started. They must be handed
    back and run, not dropped: a run cancelled before its first step never ran its cleanup,
    stayed in the replica's in-flight set forever (which its own claims exclude) and its
    fire stayed `running`. (Found by the `make chaos` soak: 20 cluster-mode fires of one
    replica left running after a freeze followed by the PostgreSQL blackhole.)"""
    proxy = proxy_to(postgres_server.port)
    await harness.migrated(database_url)
    function = recorder.function("work", timeoutSeconds=60)
    await harness.write_spec(database_url, 1, harness.spec_with(
        [function],
        [harness.schedule(name, "work", cron="0 0 1 1 *", missedFirePolicy="runOnce",
                          missedFireGraceSeconds=0, payload={"seconds": 0.2}) for name in ("job", "job2")],
        leaseSeconds=LEASE_SECONDS))
    for name in ("job", "job2"):
        await harness.fetch(database_url,
                            "INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, "
                            "planned_until, definition_hash) VALUES ($1, $2, $3, '', "
                            "date_trunc('year', now()) - interval '1 second', '')",
                            NAMESPACE, CLUSTER, name)
    proxy.hold_reply_after(b"-- name: ListState\n")
    spawn("r0", proxy.url(database_url), AGENT_DATABASE_POOLING="transaction")
    await _until(proxy.holding.is_set, "the batch's state read is held back", within=60)
    await asyncio.sleep(LEASE_SECONDS + 1)
    proxy.resume()
    await _until(lambda: len({e.key for e in recorder.completions()}) == 2,
                 "both fires ran to completion", within=90)
    await _until_no_live_rows(database_url, within=60)
