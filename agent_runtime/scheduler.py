"""The scheduling loop of one replica: plan due fires, claim, run under a lease, complete.

Per tick: plan every schedule lane (any replica may), skip fires that would overlap a live
run, fail fires abandoned too often, then claim while below `limits.maxConcurrentRuns`. Each
claimed fire runs in its own task; a separate renewal task, on its own connection, keeps the
leases alive and cancels a run whose lease was taken over (its token went stale). Redis is
not consulted anywhere here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from agent_api.db import queries
from agent_runtime import config, fires, metrics, planner, runner, spec

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime | None]
T = TypeVar("T")
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def database_clock() -> dt.datetime | None:
    """None: every query uses the database's now()."""
    return None


@dataclass
class InFlight:
    claim: fires.Claim
    task: asyncio.Task[None] | None = None
    run_id: int | None = None
    lease_lost: bool = False
    releasing: bool = False
    # Set once the function has returned: from then on the fenced completion alone decides
    # the outcome, so neither a failed renewal nor the shutdown drain may cancel the task (a
    # renewal racing our own committed completion matches nothing, and is no lease loss).
    completing: bool = False


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, identity: config.Identity,
                 watcher: config.ConfigWatcher, run: runner.Runner, counters: metrics.Metrics,
                 clock: Clock = database_clock, tick_seconds: float = 0.25) -> None:
        self._pool = pool
        self._identity = identity
        self._watcher = watcher
        self._runner = run
        self._metrics = counters
        self._clock = clock
        self._tick_seconds = tick_seconds
        self._wake = asyncio.Event()
        self._reported_errors: set[tuple[int, str, str]] = set()
        self.in_flight: dict[int, InFlight] = {}
        self.claiming = True
        self._renewer: asyncio.Task[None] | None = None

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; then claim nothing more (call `drain` next)."""
        self._renewer = asyncio.create_task(self._renew_forever(), name="lease-renewal")
        failures = 0
        while not stop.is_set():
            try:
                await self.tick()
                failures = 0
            except DB_ERRORS as error:
                failures += 1
                log.warning("scheduler tick failed (database unavailable?), retrying: %s", error)
            self._wake.clear()
            delay = self._tick_seconds if not failures else min(0.5 * failures, 5.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self._wake, self._watcher.changed), delay)
            self._watcher.changed.clear()
        self.claiming = False

    async def tick(self) -> None:
        current = self._watcher.current
        if current is None:
            return
        i = self._identity
        now = await self._pool.fetchval(queries.SQL["DatabaseNow"], self._clock())
        await self._report_errors(current)
        for schedule in current.schedules:
            await planner.plan_lane(self._pool, i.namespace, i.cluster, i.replica, schedule,
                                        current.limits, now)
        await fires.skip_overlapping(self._pool, i.namespace, i.cluster, i.replica,
                                     self._clock())
        await fires.fail_abandoned(self._pool, i.namespace, i.cluster, self._clock())
        while self.claiming and self.busy() < current.limits.max_concurrent_runs:
            claim = await fires.claim(self._pool, i.namespace, i.cluster, i.replica,
                                      current.limits.lease_seconds, self._clock())
            if claim is None:
                break
            self._metrics.claims += 1
            self._start(claim)

    def busy(self) -> int:
        return len(self.in_flight) + self._runner.manual_in_flight

    def wake(self) -> None:
        self._wake.set()

    async def _report_errors(self, current: spec.RuntimeSpec) -> None:
        for name, message in current.schedule_errors.items():
            marker = (current.generation, name, message)
            if marker in self._reported_errors:
                continue
            log.error("schedule %r is errored and will not run: %s", name, message,
                      extra={"schedule": name})
            await planner.mark_error(self._pool, self._identity.namespace,
                                     self._identity.cluster, name, message)
            self._reported_errors.add(marker)

    # -- one run ----------------------------------------------------------------------------

    def _start(self, claim: fires.Claim) -> None:
        entry = InFlight(claim)
        self.in_flight[claim.id] = entry
        self._metrics.in_flight += 1
        entry.task = asyncio.create_task(self._execute(entry), name=f"fire-{claim.id}")

    async def _execute(self, entry: InFlight) -> None:
        claim = entry.claim
        fields = {"schedule": claim.schedule, "fire_time": claim.fire_time.isoformat(),
                  "fire_id": claim.id, "attempt": claim.attempt, "lease_token": claim.lease_token}
        try:
            entry.run_id = await _retrying(f"recording the start of fire {claim.id}",
                                           lambda: self._runner.start_run(
                function=claim.function, trigger="schedule", schedule=claim.schedule,
                fire_time=claim.fire_time, attempt=claim.attempt, fire_id=claim.id,
                lease_token=claim.lease_token,
            ))
            log.info("run started", extra=fields)
            outcome = await self._runner.execute(
                claim.function, trigger="schedule", schedule=claim.schedule,
                fire_time=claim.fire_time, attempt=claim.attempt,
                idempotency_key=claim.idempotency_key, payload=claim.payload,
                run_id=entry.run_id,
            )
            entry.completing = True
            accepted = await self._complete(claim, outcome)
            if accepted:
                log.info("run %s", outcome.status, extra={**fields, "error": outcome.error})
                await self._finish(entry, outcome.status, outcome.error, outcome.output)
            else:
                self._metrics.fencing_rejections += 1
                log.warning("late completion rejected: the fire was taken over by another "
                            "replica (stale fencing token)", extra=fields)
                await self._finish(entry, "rejected",
                                   f"completion rejected: lease token {claim.lease_token} is "
                                   f"stale (run outcome was {outcome.status})", outcome.output)
        except asyncio.CancelledError:
            if entry.lease_lost:
                log.warning("run cancelled: its lease was taken over", extra=fields)
                await self._finish(entry, "rejected", "lease lost: renewal rejected by the "
                                   "fencing token; another replica owns this fire", None)
            elif entry.releasing:
                released = await _retrying(f"releasing fire {claim.id}",
                                           lambda: fires.release(self._pool, claim))
                log.warning("run released at shutdown", extra={**fields, "released": released})
                await self._finish(entry, "released", "shutdown: lease released for another "
                                   "replica to run", None)
            else:
                raise
        finally:
            self.in_flight.pop(claim.id, None)
            self._metrics.in_flight -= 1
            self._wake.set()

    async def _finish(self, entry: InFlight, status: str, error: str | None,
                      output: dict | None) -> None:
        if entry.run_id is not None:
            run_id = entry.run_id
            await _retrying(f"recording the end of run {run_id}", lambda: self._runner.finish_run(
                run_id, "schedule", status, error, output))

    async def _complete(self, claim: fires.Claim, outcome: runner.Outcome) -> bool:
        """Fenced completion plus the lane's failure bookkeeping, in one transaction.

        Retried while the database is unreachable: the lease keeps the fire ours meanwhile,
        and if it expires the token check rejects the completion, which is the right answer.
        """
        for attempt in range(60):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    if not await fires.complete(conn, claim, outcome.status, outcome.error,
                                                self._clock()):
                        return False
                    await self._record_lane_result(conn, claim, outcome.status)
                    return True
            except DB_ERRORS as error:
                log.warning("completing fire %s failed, retrying: %s", claim.id, error)
                await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        return False

    async def _record_lane_result(self, conn: asyncpg.Connection, claim: fires.Claim,
                                  status: str) -> None:
        key = (self._identity.namespace, self._identity.cluster, claim.schedule, claim.lane)
        if status == "succeeded":
            await conn.execute(queries.SQL["RecordLaneSuccess"], *key)
            return
        current = self._watcher.current
        schedule = next((s for s in current.schedules if s.name == claim.schedule), None)
        if schedule is None:
            return
        policy = schedule.failure_policy
        row = await conn.fetchrow(queries.SQL["RecordLaneFailure"], *key, policy.action,
                                  policy.max_consecutive_failures, policy.backoff_seconds,
                                  self._clock())
        if row is not None and row["disabled_at"] is not None and policy.action == "disable":
            log.error("schedule %r disabled after %s consecutive failures", claim.schedule,
                      row["consecutive_failures"], extra={"schedule": claim.schedule})

    # -- leases -----------------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        """Renew every held lease on a dedicated connection, so a busy pool never delays it."""
        conn: asyncpg.Connection | None = None
        try:
            while True:
                limits = self._watcher.current.limits if self._watcher.current else None
                lease_seconds = limits.lease_seconds if limits else 30.0
                await asyncio.sleep(max(lease_seconds / 3, 0.1))
                held = [(e.claim.id, e.claim.lease_token) for e in self.in_flight.values()
                        if not e.lease_lost]
                if not held:
                    continue
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self._identity.database_url)
                    renewed = await fires.renew(conn, held, lease_seconds, self._clock())
                except DB_ERRORS as error:
                    log.warning("lease renewal failed, retrying: %s", error)
                    conn = None
                    continue
                for fire_id, _ in held:
                    entry = self.in_flight.get(fire_id)
                    if (fire_id not in renewed and entry is not None and entry.task is not None
                            and not entry.completing):
                        self._metrics.fencing_rejections += 1
                        entry.lease_lost = True
                        entry.task.cancel()
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()

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
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)


async def _retrying(what: str, operation: Callable[[], Awaitable[T]], attempts: int = 60) -> T:
    """Run a database write, retrying while PostgreSQL is unreachable (say, restarting).

    A run's bookkeeping must not be lost to a dropped connection: a run row left `running`
    would never be closed. The backoff matches the fenced completion's.
    """
    for attempt in range(attempts):
        try:
            return await operation()
        except DB_ERRORS as error:
            if attempt == attempts - 1:
                raise
            log.warning("%s failed, retrying: %s", what, error)
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
    raise AssertionError("unreachable")


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
