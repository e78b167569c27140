"""Turning cron schedules into fire rows a short horizon ahead, and judging late fires.

Any replica may plan any lane it can claim from (single-mode lanes and its own cluster-mode
lanes). A replica knows from its crons, in memory, when a lane next needs planning; only
then does it read the lanes (read-only) and, if the lane still needs it, run one planning
transaction for every such lane: lock them SKIP LOCKED (a lane being planned elsewhere is
skipped), insert their fires up to `now + PLAN_AHEAD_SECONDS` in one statement, advance
`planned_until`, and apply the missed-fire policy to their late fires. A schedule that does
not fall due costs no write at all; a due fire is in the table before its time, so claiming
it at its time is one indexed statement.

A fire is late when it has not started within the schedule's `missedFireGraceSeconds` of
its fire time (real lateness, by the database clock); the policy then keeps the newest
`keep_late` of a lane's late fires (`skip` 0, `runOnce` 1, `backfill` N) and records every
other one as `missed`. After a long outage the fires since `planned_until` are inserted too,
at most `MAX_FIRES_PER_LANE` of the latest; the older ones are counted on the lane and
summarised in one `missed` run row: nothing is dropped without a trace.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import asyncpg

from agent_api import cron, models
from agent_api.db import queries
from agent_runtime import spec

PLAN_AHEAD_SECONDS = 10.0
MAX_FIRES_PER_LANE = 1000
MAX_COUNTED = 100_000  # a summary counts at most this many earlier missed fires
# Next fire times remembered per (schedule, definition, planned_until): croniter is the
# planner's main CPU cost, and a cluster may hold thousands of schedules.
NEXT_FIRE_CACHE_SIZE = 200_000
_FAR = dt.timedelta(days=400)  # looking further ahead than a year finds any cron's next fire


def lane_of(schedule: spec.Schedule, replica: str) -> str:
    return "" if schedule.mode == "single" else replica


def keep_late(schedule: spec.Schedule) -> int:
    return {"skip": 0, "runOnce": 1, "backfill": schedule.backfill_limit}[
        schedule.missed_fire_policy]


@dataclass
class LaneState:
    definition_hash: str
    planned_until: dt.datetime
    backoff_until: dt.datetime | None
    disabled: bool


@dataclass
class PassResult:
    missed: int = 0
    lanes_busy: int = 0  # locked by another replica's pass


@dataclass
class Planner:
    """One replica's view of its lanes, refreshed by `read` and advanced by `plan`."""

    namespace: str
    cluster: str
    replica: str
    horizon: dt.timedelta = dt.timedelta(seconds=PLAN_AHEAD_SECONDS)
    lanes: dict[tuple[str, str], LaneState] = field(default_factory=dict)
    known: bool = False  # `lanes` reflects the table (read at least once)
    _next_fire: dict[tuple[str, str, dt.datetime], dt.datetime | None] = field(
        default_factory=dict)
    _version: int = 0  # bumped whenever `lanes` changes
    _cached_for: list[spec.Schedule] | None = None  # held, so its identity is stable
    _cached_version: int = -1
    _cached_next: dt.datetime | None = None

    # -- what needs doing, from memory ------------------------------------------------------

    def next_fire_after(self, schedule: spec.Schedule, after: dt.datetime) -> dt.datetime | None:
        key = (schedule.name, schedule.definition_hash(), after)
        if key not in self._next_fire:
            if len(self._next_fire) > NEXT_FIRE_CACHE_SIZE:
                self._next_fire.clear()
            found = cron.fire_times(schedule.cron, schedule.timezone, after, after + _FAR, 1)
            self._next_fire[key] = found[0] if found else None
        return self._next_fire[key]

    def planning_due_at(self, schedule: spec.Schedule) -> dt.datetime | None:
        """When this lane next needs a planning pass (None: never, as things stand)."""
        if not schedule.enabled:
            return None
        state = self.lanes.get((schedule.name, lane_of(schedule, self.replica)))
        if state is None or state.definition_hash != schedule.definition_hash():
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        if state.disabled:
            return None
        after = state.planned_until
        if state.backoff_until is not None and state.backoff_until > after:
            after = state.backoff_until - dt.timedelta(microseconds=1)
        nxt = self.next_fire_after(schedule, after)
        if nxt is None:
            return None
        # Hysteresis: a frequent lane is planned every half horizon (half a horizon of fires
        # per pass), not before each of its fires.
        return max(nxt - self.horizon, state.planned_until - self.horizon / 2)

    def next_planning_at(self, schedules: list[spec.Schedule]) -> dt.datetime | None:
        # Cached until the lanes or the schedules change: with thousands of schedules, a
        # scan per pass would cost more CPU than the passes themselves.
        if self._cached_for is not schedules or self._cached_version != self._version:
            times = [t for s in schedules if (t := self.planning_due_at(s)) is not None]
            self._cached_next = min(times, default=None)
            self._cached_for, self._cached_version = schedules, self._version
        return self._cached_next

    def needing_plan(self, schedules: list[spec.Schedule],
                     now: dt.datetime) -> list[spec.Schedule]:
        first = self.next_planning_at(schedules)
        if first is None or first > now:
            return []
        return [s for s in schedules
                if (t := self.planning_due_at(s)) is not None and t <= now]

    # -- the database -----------------------------------------------------------------------

    async def read(self, conn: asyncpg.Connection | asyncpg.Pool,
                   clock: dt.datetime | None) -> None:
        rows = await conn.fetch(queries.SQL["ReadLanes"], self.namespace, self.cluster,
                                self.replica, clock)
        self.lanes = {(r["schedule"], r["lane"]): _state(r) for r in rows}
        self.known = True
        self._version += 1

    async def plan(self, pool: asyncpg.Pool, schedules: list[spec.Schedule],
                   limits: models.Limits, now: dt.datetime, judge_late: bool) -> PassResult:
        """One planning transaction for the lanes of `schedules`: insert their fires up to
        the horizon, advance them, and (when `judge_late`, or when it inserted fires that are
        late already) judge their late fires. Returns what it did."""
        result = PassResult()
        wanted = {(s.name, lane_of(s, self.replica)): s for s in schedules}
        if not wanted:
            return result
        until = now + self.horizon
        async with pool.acquire() as conn, conn.transaction():
            missing = [k for k in wanted if k not in self.lanes]
            if missing:
                await conn.execute(queries.SQL["EnsureLanes"], self.namespace, self.cluster,
                                   [s for s, _ in missing], [lane for _, lane in missing],
                                   [wanted[k].definition_hash() for k in missing], now)
            rows = await conn.fetch(queries.SQL["LockLanes"], self.namespace, self.cluster,
                                    [s for s, _ in wanted], [lane for _, lane in wanted])
            locked = {(r["schedule"], r["lane"]): _state(r) for r in rows}
            result.lanes_busy = len(wanted) - len(locked)
            batch = _FireBatch()
            advanced: dict[tuple[str, str], LaneState] = {}
            for key, state in locked.items():
                schedule = wanted[key]
                definition = schedule.definition_hash()
                if state.definition_hash != definition:
                    # AdvanceLanes clears the old definition's backoff and auto-disable.
                    state = LaneState(definition, state.planned_until, None, False)
                before = state
                if schedule.enabled and not state.disabled and state.planned_until < until:
                    times = self._fire_times(schedule, state.planned_until, until)
                    if times.earlier:
                        await conn.execute(
                            queries.SQL["RecordMissedSummary"], self.namespace, self.cluster,
                            schedule.name, key[1], self.replica, schedule.function,
                            times.earlier, times.earlier_first, times.earlier_last, now)
                        result.missed += times.earlier
                    due = [t for t in times.listed
                           if state.backoff_until is None or t >= state.backoff_until]
                    batch.add(schedule, key[1], due, limits, definition)
                    state = LaneState(definition, until, state.backoff_until, state.disabled)
                if state is not before or before.definition_hash != locked[key].definition_hash:
                    advanced[key] = state
            if batch.times:
                await conn.execute(queries.SQL["InsertFires"], self.namespace, self.cluster,
                                   *batch.columns())
            if advanced:
                keys = list(advanced)
                await conn.execute(queries.SQL["AdvanceLanes"], self.namespace, self.cluster,
                                   [s for s, _ in keys], [lane for _, lane in keys],
                                   [advanced[k].planned_until for k in keys],
                                   [advanced[k].definition_hash for k in keys])
            if locked and (judge_late or any(t < now for t in batch.late_after)):
                keys = list(locked)
                row = await conn.fetchrow(queries.SQL["SweepLateFires"], self.namespace,
                                          self.cluster, [s for s, _ in keys],
                                          [lane for _, lane in keys], self.replica, now)
                result.missed += row["missed"]
        self.lanes.update(locked)
        self.lanes.update(advanced)
        self._version += 1
        return result

    def _fire_times(self, schedule: spec.Schedule, after: dt.datetime,
                    until: dt.datetime) -> _Times:
        times = cron.fire_times(schedule.cron, schedule.timezone, after, until,
                                MAX_FIRES_PER_LANE + 1)
        if len(times) <= MAX_FIRES_PER_LANE:
            return _Times(times)
        # A long outage of a frequent schedule: list the latest, count the rest.
        listed = cron.latest_fire_times(schedule.cron, schedule.timezone, after, until,
                                        MAX_FIRES_PER_LANE)
        earlier = cron.fire_times(schedule.cron, schedule.timezone, after,
                                  listed[0] - dt.timedelta(microseconds=1), MAX_COUNTED)
        return _Times(listed, len(earlier), earlier[0], earlier[-1])


@dataclass
class _Times:
    listed: list[dt.datetime]
    earlier: int = 0  # fires before `listed`, summarised rather than listed
    earlier_first: dt.datetime | None = None
    earlier_last: dt.datetime | None = None


def _state(row: asyncpg.Record) -> LaneState:
    return LaneState(row["definition_hash"], row["planned_until"], row["backoff_until"],
                     row["disabled_at"] is not None)


class _FireBatch:
    """The columns of one InsertFires statement, built lane by lane."""

    def __init__(self) -> None:
        self.schedules: list[str] = []
        self.lanes: list[str] = []
        self.modes: list[str] = []
        self.functions: list[str] = []
        self.exclusive: list[bool] = []
        self.payloads: list[str] = []
        self.max_attempts: list[int] = []
        self.times: list[dt.datetime] = []
        self.late_after: list[dt.datetime] = []
        self.keep_late: list[int] = []
        self.definitions: list[str] = []

    def add(self, schedule: spec.Schedule, lane: str, times: list[dt.datetime],
            limits: models.Limits, definition: str) -> None:
        grace = dt.timedelta(seconds=schedule.missed_fire_grace_seconds)
        payload = json.dumps(schedule.payload)
        for t in times:
            self.schedules.append(schedule.name)
            self.lanes.append(lane)
            self.modes.append(schedule.mode)
            self.functions.append(schedule.function)
            self.exclusive.append(not schedule.allow_overlap)
            self.payloads.append(payload)
            self.max_attempts.append(limits.max_attempts)
            self.times.append(t)
            self.late_after.append(t + grace)
            self.keep_late.append(keep_late(schedule))
            self.definitions.append(definition)

    def columns(self) -> list[list]:
        return [self.schedules, self.lanes, self.modes, self.functions, self.exclusive,
                self.payloads, self.max_attempts, self.times, self.late_after, self.keep_late,
                self.definitions]


async def mark_error(pool: asyncpg.Pool, namespace: str, cluster: str, schedule: str,
                     message: str) -> None:
    await pool.execute(queries.SQL["MarkLaneError"], namespace, cluster, schedule, "", message)
