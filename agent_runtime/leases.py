"""Keeping the leases of a replica's running fires alive, and fencing itself when it cannot.

Every lease is renewed by one batched statement every third of the lease. Each run also has
a local deadline on this replica's monotonic clock: the moment the claim (or the last
successful renewal) was *sent*, plus the lease, less a safety margin. The database computed
the real expiry from a later instant, so the local deadline always comes first. A run whose
lease was not renewed by its deadline (the database is unreachable, the connection is
half-open, a renewal timed out) is cancelled here, before any other replica can rescue the
fire: two executions of one fire never overlap, whatever the network does. A renewal that
matches nothing (the token is stale: another replica took the fire over) cancels the run too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from agent_runtime import database, fires, metrics

log = logging.getLogger(__name__)

# The part of the lease kept back from the local deadline, for scheduling delays in this
# process (a busy event loop) and a renewal statement in flight.
SAFETY_MARGIN = 0.2


@dataclass
class InFlight:
    claim: fires.Claim
    deadline: float  # monotonic: the run is cancelled if its lease is not renewed by then
    task: asyncio.Task[None] | None = None
    # Set by the run's first step. A task cancelled before its first step never runs its
    # body (its cleanup included), so the fencing cancels only started runs; a run that
    # starts overdue is fenced by `may_start` or, while it prepares, by the fencing loop.
    started: bool = False
    lease_lost: bool = False  # a renewal matched nothing: another replica owns the fire
    fenced: bool = False  # the lease could not be renewed before the local deadline
    releasing: bool = False  # shutdown: hand the fire back for another replica
    # Set once the function has returned: from then on the fenced completion alone decides
    # the outcome, so neither a failed renewal nor the shutdown drain may cancel the task.
    completing: bool = False
    broken: str | None = None  # the run's bookkeeping failed with this error

    @property
    def stopped(self) -> bool:
        """Cancelled on purpose (not by a bug or the event loop going away)."""
        return self.lease_lost or self.fenced or self.releasing

    def reason(self) -> tuple[bool, str]:
        """(whether the attempt counts against maxAttempts, the run's recorded error)."""
        if self.lease_lost:
            return True, ("lease lost: renewal rejected by the fencing token; another "
                          "replica owns this fire")
        if self.fenced:
            return True, ("self-fenced: the lease could not be renewed before it expired "
                          "(database unreachable or too slow); the run was cancelled so "
                          "that another replica can run the fire")
        if self.releasing:
            return False, "shutdown: lease released for another replica to run"
        return True, f"bookkeeping failed: {self.broken}"


class LeaseKeeper:
    """Two loops that never wait on each other: renewal (database) and fencing (local clock).

    A renewal stuck on a half-open connection must not delay the fencing, and cancelling a
    statement on such a connection can itself hang, so a renewal runs as a task of its own
    that the loop waits on for at most its budget, then leaves behind (one at a time)."""

    def __init__(self, pool: asyncpg.Pool, owner: str, lease_seconds: Callable[[], float],
                 clock: Callable[[], dt.datetime | None], counters: metrics.Metrics) -> None:
        self._pool = pool
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._metrics = counters
        self.in_flight: dict[int, InFlight] = {}
        self._changed = asyncio.Event()
        self._renewal: asyncio.Task[set[int]] | None = None

    def hold(self, claim: fires.Claim, sent: float, lease_seconds: float) -> InFlight:
        entry = InFlight(claim, deadline=sent + lease_seconds * (1 - SAFETY_MARGIN))
        self.in_flight[claim.id] = entry
        self._changed.set()
        return entry

    def drop(self, fire_id: int) -> None:
        self.in_flight.pop(fire_id, None)

    async def run(self) -> None:
        fencing = asyncio.create_task(self._fence_forever(), name="lease-fencing")
        try:
            await self._renew_forever()
        finally:
            fencing.cancel()
            if self._renewal is not None:
                self._renewal.cancel()
            await asyncio.gather(fencing, return_exceptions=True)

    async def _renew_forever(self) -> None:
        """Renew every third of the lease; after a failure, after a tenth."""
        while True:
            interval = max(self._lease_seconds() / 3, 0.05)
            ok = await self.renew_all()
            await asyncio.sleep(interval if ok else interval * 0.3)

    async def _fence_forever(self) -> None:
        """Sleep until the earliest local deadline (or a new run), then fence what is overdue."""
        while True:
            self._changed.clear()
            live = [e.deadline for e in self.in_flight.values() if self._live(e)]
            wait = min(live) - time.monotonic() if live else None
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
            self.fence_overdue()

    def start(self, entry: InFlight) -> None:
        """The run's first step: from now on the fencing loop may cancel it."""
        entry.started = True
        self._changed.set()

    @staticmethod
    def _live(entry: InFlight) -> bool:
        return entry.task is not None and entry.started and not entry.stopped and not entry.completing

    def fence_overdue(self) -> None:
        now = time.monotonic()
        for entry in list(self.in_flight.values()):
            if self._live(entry) and now >= entry.deadline:
                log.warning("self-fencing fire %s: its lease could not be renewed in time",
                            entry.claim.id, extra={"fire_id": entry.claim.id,
                                                   "schedule": entry.claim.schedule})
                self._metrics.self_fenced()
                entry.fenced = True
                entry.task.cancel()

    def may_start(self, entry: InFlight) -> bool:
        """Whether a run may call its function now: its lease is still its own by the local
        deadline. Asked synchronously right before the call, because the fencing loop may
        not have run yet: after a freeze (SIGSTOP, a stalled VM) the run's awaited answer and
        its overdue deadline are ready at once, and the run's task may be scheduled first.
        Past the deadline the run is fenced here, exactly as `fence_overdue` would."""
        if entry.stopped:
            return False
        if time.monotonic() < entry.deadline:
            return True
        log.warning("self-fencing fire %s before its function started: its lease could not be "
                    "renewed in time", entry.claim.id,
                    extra={"fire_id": entry.claim.id, "schedule": entry.claim.schedule})
        self._metrics.self_fenced()
        entry.fenced = True
        return False

    async def renew_all(self) -> bool:
        """Renew every held lease in one statement; False when the statement failed or did
        not answer in time."""
        held = [e for e in self.in_flight.values() if not e.stopped and not e.completing]
        if not held:
            return True
        if self._renewal is not None and not self._renewal.done():
            return False  # the previous one is still stuck on its connection
        lease_seconds = self._lease_seconds()
        # The renewal must answer before the earliest deadline, or it is too late anyway.
        budget = max(min(e.deadline for e in held) - time.monotonic(), 0.05)
        sent = time.monotonic()
        self._renewal = asyncio.create_task(fires.renew(
            self._pool, [(e.claim.id, e.claim.lease_token) for e in held], self._owner,
            lease_seconds, self._clock()))
        # Left behind when it does not answer in time: its late error is expected, not news.
        self._renewal.add_done_callback(
            lambda task: task.cancelled() or task.exception())
        done, _ = await asyncio.wait({self._renewal}, timeout=budget)
        if not done:
            log.warning("lease renewal did not answer within %.1f s, retrying", budget)
            return False
        try:
            renewed = self._renewal.result()
        except database.TRANSIENT as error:
            log.warning("lease renewal failed, retrying: %r", error)
            return False
        for entry in held:
            if entry.claim.id in renewed:
                entry.deadline = sent + lease_seconds * (1 - SAFETY_MARGIN)
            elif not entry.stopped and not entry.completing:
                self._metrics.fencing_rejected()
                entry.lease_lost = True  # a run not started yet sees it in `may_start`
                if self._live(entry):
                    entry.task.cancel()
        self._changed.set()
        return True
