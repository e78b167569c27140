"""The scheduling loop of one replica: plan ahead, sleep until there is work, claim, run
under a lease, complete.

A pass peeks (one read-only statement), plans only the lanes whose next fire comes within
the planning horizon, judges late fires, fails abandoned ones, and claims a batch while
below `limits.maxConcurrentRuns`. Then the replica sleeps until the earliest of: the next
due fire, the next lease that will expire, the next fire that will turn late, the next
planning moment of its crons, a NOTIFY (a fire was released, the spec changed), a run
finishing, or `poll_seconds` as a slow fallback. An idle replica therefore writes nothing
and reads once per `poll_seconds`.

Each claimed fire runs in its own task; `leases.LeaseKeeper` renews the leases in one batched
statement and cancels a run whose lease was taken over, or could not be renewed before it
expires by this replica's own clock (self-fencing). Redis is not consulted anywhere here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from agent_runtime import (
    completions,
    config,
    database,
    fires,
    leases,
    metrics,
    planner,
    runner,
    spec,
)

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime | None]
T = TypeVar("T")
DB_ERRORS = database.TRANSIENT
CLAIM_BATCH = 32  # fires claimed in one statement at most
BUSY_LANES_SECONDS = 1.0  # how soon to look again at lanes another replica was planning


def database_clock() -> dt.datetime | None:
    """None: every query uses the database's now()."""
    return None


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, identity: config.Identity,
                 watcher: config.ConfigWatcher, run: runner.Runner, counters: metrics.Metrics,
                 clock: Clock = database_clock, tick_seconds: float = 0.25,
                 poll_seconds: float | None = None) -> None:
        self._pool = pool
        self._identity = identity
        self._watcher = watcher
        self._runner = run
        self._metrics = counters
        self._clock = clock
        # The shortest sleep between passes that found claimable work they could not claim.
        self._tick_seconds = tick_seconds
        self._poll_seconds = poll_seconds or identity.scheduler_poll_seconds
        self._wake = asyncio.Event()
        self._generation: int | None = None
        self._reported_errors: set[tuple[int, str, str]] = set()
        self.planner = planner.Planner(identity.namespace, identity.cluster, identity.replica)
        self.leases = leases.LeaseKeeper(pool, identity.replica, self._lease_seconds, clock,
                                         counters)
        self._completions = completions.Batcher(pool)
        self.claiming = True
        self._keeper: asyncio.Task[None] | None = None
        # Slots a claim in progress may fill: counted as busy while the claim is awaited, so
        # a manual or webhook run admitted meanwhile cannot push the replica past its limit.
        self._claiming_slots = 0
        run.occupied = self.busy

    @property
    def in_flight(self) -> dict[int, leases.InFlight]:
        return self.leases.in_flight

    def _lease_seconds(self) -> float:
        current = self._watcher.current
        return current.limits.lease_seconds if current else 30.0

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run passes until `stop` is set; then claim nothing more (call `drain` next)."""
        self._keeper = asyncio.create_task(self.leases.run(), name="lease-renewal")
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                delay = await self.tick()
                failures = 0
            except DB_ERRORS as error:
                failures += 1
                delay = min(0.5 * failures, 5.0)
                log.warning("scheduler pass failed (database unavailable?), retrying in "
                            "%.1f s: %r", delay, error)
            except Exception:  # a bug must not end scheduling: log it and go on
                failures += 1
                delay = min(0.5 * failures, 5.0)
                log.exception("scheduler pass failed unexpectedly, retrying in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self._wake, self._watcher.changed,
                                              self._watcher.fires_changed), delay)
            self._watcher.changed.clear()
            self._watcher.fires_changed.clear()
        self.claiming = False

    async def tick(self) -> float:
        """One pass; returns how long to sleep before the next one (seconds)."""
        current = self._watcher.current
        if current is None:
            return self._poll_seconds
        i = self._identity
        if current.generation != self._generation:
            await self._apply_generation(current)
        peek = await fires.peek(self._pool, i.namespace, i.cluster, i.replica,
                                list(self.in_flight), self._clock())
        now = peek.now
        if not self.planner.known or self.planner.needing_plan(current.schedules, now):
            await self.planner.read(self._pool, self._clock())  # another replica may have
        due = self.planner.needing_plan(current.schedules, now)
        busy_lanes = False
        if due or peek.late:
            result = await self.planner.plan(
                self._pool, current.schedules if peek.late else due, current.limits, now,
                judge_late=peek.late)
            # A lane another replica is planning right now: look again in a while, not at
            # once (its pass inserts the fires; re-reading thousands of lanes meanwhile
            # would only cost CPU).
            busy_lanes = result.lanes_busy > 0
            self._metrics.missed(result.missed)
            if result.missed:
                log.warning("%s fires missed: not started within their grace "
                            "(missedFireGraceSeconds)", result.missed,
                            extra={"missed": result.missed})
            peek = await fires.peek(self._pool, i.namespace, i.cluster, i.replica,
                                    list(self.in_flight), self._clock())
        if peek.expired:
            await fires.fail_abandoned(self._pool, i.namespace, i.cluster, self._clock())
        starved = False
        if self.claiming and peek.claimable and self.room(current) > 0:
            starved = not await self._claim(current)
        return self._sleep_seconds(current, peek, starved, busy_lanes)

    def room(self, current: spec.RuntimeSpec) -> int:
        return current.limits.max_concurrent_runs - self.busy()

    def busy(self) -> int:
        return len(self.in_flight) + self._runner.manual_in_flight + self._claiming_slots

    def wake(self) -> None:
        self._wake.set()

    def _sleep_seconds(self, current: spec.RuntimeSpec, peek: fires.Peek,
                       starved: bool, busy_lanes: bool = False) -> float:
        planning = self.planner.next_planning_at(current.schedules)
        if busy_lanes and planning is not None:
            planning = max(planning, peek.now + dt.timedelta(seconds=BUSY_LANES_SECONDS))
        wake_at = [peek.next_late, planning]
        if self.room(current) > 0:  # at capacity, a finishing run wakes us instead
            wake_at += [peek.next_due, peek.next_expiry]
        delays = [(t - peek.now).total_seconds() for t in wake_at if t is not None]
        delay = min([self._poll_seconds, *delays])
        floor = self._tick_seconds if starved else 0.0
        return max(delay, floor)

    async def _apply_generation(self, current: spec.RuntimeSpec) -> None:
        i = self._identity
        for name, message in current.schedule_errors.items():
            marker = (current.generation, name, message)
            if marker in self._reported_errors:
                continue
            log.error("schedule %r is errored and will not run: %s", name, message,
                      extra={"schedule": name})
            await planner.mark_error(self._pool, i.namespace, i.cluster, name, message)
            self._reported_errors.add(marker)
        live = [(s.name, s.definition_hash()) for s in current.schedules if s.enabled]
        cancelled = await fires.cancel_stale(self._pool, i.namespace, i.cluster, live)
        if cancelled:
            log.info("cancelled %s planned fires of changed or removed schedules", cancelled)
        self._generation = current.generation

    async def _claim(self, current: spec.RuntimeSpec) -> bool:
        """Claim in batches while there is room; False when nothing could be claimed."""
        i = self._identity
        lease_seconds = current.limits.lease_seconds
        claimed_any = False
        while self.claiming:
            want = min(self.room(current), CLAIM_BATCH)
            if want <= 0:
                break
            sent = time.monotonic()
            self._claiming_slots = want  # held until the claimed runs are in flight
            try:
                claims = await fires.claim(self._pool, i.namespace, i.cluster, i.replica, want,
                                           list(self.in_flight), lease_seconds, self._clock())
                # Lateness on this replica's clock unless a test injects one (skew is clamped).
                claims_at = self._clock() or dt.datetime.now(dt.UTC)
                # The runs of one claim see one snapshot of the replica's state, read once
                # (each reads its own if that fails: the claimed fires must start whatever
                # happens).
                state = None
                if len(claims) > 1:
                    with contextlib.suppress(*DB_ERRORS):
                        state = await self._runner.state_store().items()
                for claim in claims:
                    self._metrics.claimed((claims_at - claim.fire_time).total_seconds())
                    self._start(claim, sent, lease_seconds, state)
            finally:
                self._claiming_slots = 0
            claimed_any = claimed_any or bool(claims)
            if len(claims) < want:
                break
        return claimed_any

    # -- one run ----------------------------------------------------------------------------

    def _start(self, claim: fires.Claim, sent: float, lease_seconds: float,
               state: dict | None = None) -> None:
        if claim.id in self.in_flight:  # ClaimFires excludes our own fires; never run twice
            log.error("claimed fire %s that this replica is still running; not starting it "
                      "again", claim.id)
            return
        entry = self.leases.hold(claim, sent, lease_seconds)
        self._metrics.in_flight.inc()
        entry.task = asyncio.create_task(self._execute(entry, state), name=f"fire-{claim.id}")

    async def _execute(self, entry: leases.InFlight, state: dict | None = None) -> None:
        claim = entry.claim
        fields = {"schedule": claim.schedule, "fire_time": claim.fire_time.isoformat(),
                  "fire_id": claim.id, "attempt": claim.attempt, "lease_token": claim.lease_token}
        self.leases.start(entry)
        try:
            log.info("run started", extra=fields)
            try:
                if state is None:
                    # Read here, not in the runner: a database failure while preparing the
                    # run is bookkeeping failing (handed back below, the fire runs again),
                    # not the function failing; the function has not been called.
                    state = await self._runner.state_store().items()
                outcome = await self._runner.execute(
                    claim.function, trigger="schedule", schedule=claim.schedule,
                    fire_time=claim.fire_time, attempt=claim.attempt,
                    idempotency_key=claim.idempotency_key, payload=claim.payload,
                    run_id=claim.run_id, fence=(claim.id, claim.lease_token),
                    state=dict(state), may_start=lambda: self.leases.may_start(entry),
                )
            except asyncio.CancelledError:
                if not entry.stopped:
                    raise
                await self._hand_back(entry, fields)
                return
            if outcome is runner.NOT_STARTED:  # fenced before the function was called
                await self._hand_back(entry, fields)
                return
            entry.completing = True
            await self._complete(entry, outcome, fields)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # bookkeeping failed for any reason: never leave it running
            log.exception("recording fire %s failed; handing it back", claim.id, extra=fields)
            entry.broken = f"{type(error).__name__}: {error}"
            await self._hand_back(entry, fields)
        finally:
            self.leases.drop(claim.id)
            self._metrics.in_flight.dec()
            self._wake.set()

    async def _complete(self, entry: leases.InFlight, outcome: runner.Outcome,
                        fields: dict) -> None:
        """Fenced completion with the lane's failure bookkeeping, in one statement.

        Retried while the database is unreachable: the lease keeps the fire ours meanwhile,
        and if it expires the token check rejects the completion, which is the right answer.
        """
        claim = entry.claim
        policy = self._policy(claim.schedule)
        error, output = self._runner.recordable(outcome.error, outcome.output)
        done = await _retrying(f"completing fire {claim.id}", lambda: self._completions.complete(
            claim, outcome.status, error, output, policy, self._clock()))
        if done.rules_out_fires:
            i = self._identity
            await _retrying(f"cancelling the fires the failure policy rules out after {claim.id}",
                            lambda: fires.cancel_ruled_out(self._pool, i.namespace, i.cluster,
                                                           claim, done, self._clock()))
        if done.accepted:
            self._metrics.run_finished("schedule", outcome.status)
            log.info("run %s", outcome.status, extra={**fields, "error": outcome.error})
            if done.disabled_at is not None and policy.action == "disable":
                log.error("schedule %r disabled after %s consecutive failures", claim.schedule,
                          done.consecutive_failures, extra={"schedule": claim.schedule})
            return
        self._metrics.run_finished("schedule", "rejected")
        self._metrics.fencing_rejected()
        log.warning("late completion rejected: the fire was taken over by another replica "
                    "(stale fencing token)", extra=fields)

    async def _hand_back(self, entry: leases.InFlight, fields: dict) -> None:
        """The run did not complete: release the fire (fenced) and close its run row."""
        claim = entry.claim
        count_attempt, why = entry.reason()
        released = await _retrying(f"releasing fire {claim.id}", lambda: fires.release(
            self._pool, claim, count_attempt, why))
        status = "released" if released else "rejected"
        self._metrics.run_finished("schedule", status)
        log.warning("run %s: %s", status, why, extra={**fields, "released": released})

    def _policy(self, schedule_name: str) -> fires.FailurePolicy:
        current = self._watcher.current
        schedule = current.schedule(schedule_name) if current else None
        if schedule is None:  # removed meanwhile: count only
            return fires.FailurePolicy("continue", 1, 1.0)
        p = schedule.failure_policy
        return fires.FailurePolicy(p.action, p.max_consecutive_failures, p.backoff_seconds)

    # -- shutdown ---------------------------------------------------------------------------

    async def drain(self, grace_seconds: float) -> None:
        """Stop claiming; let runs finish within the grace period; release the rest."""
        self.claiming = False
        tasks = [e.task for e in self.in_flight.values() if e.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for entry in list(self.in_flight.values()):
                if entry.task in pending and not entry.completing:
                    entry.releasing = True
                    entry.task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        await self._completions.close()


async def _retrying(what: str, operation: Callable[[], Awaitable[T]], attempts: int = 60) -> T:
    """Run a database write, retrying while PostgreSQL is unreachable (say, restarting).

    A run's bookkeeping must not be lost to a dropped connection: a fire or run row left
    `running` would never be closed. Every write retried here is fenced and idempotent.
    """
    for attempt in range(attempts):
        try:
            return await operation()
        except DB_ERRORS as error:
            if attempt == attempts - 1:
                raise
            log.warning("%s failed, retrying: %r", what, error)
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
    raise AssertionError("unreachable")


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
