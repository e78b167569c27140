-- name: ReadLanes
-- Read-only: where planning stands for the lanes this replica could plan (single-mode lanes
-- and its own cluster-mode lanes). A replica reads before it plans, so a lane that another
-- replica has just planned costs it no write at all.
-- $1 namespace, $2 cluster, $3 replica, $4 clock.
SELECT schedule, lane, definition_hash, planned_until, backoff_until, disabled_at,
       coalesce($4::timestamptz, now()) AS now
FROM schedule_lanes
WHERE namespace = $1 AND cluster = $2 AND lane IN ('', $3);

-- name: EnsureLanes
-- A lane seen for the first time starts at "now": fires before it are not missed fires.
-- $1 namespace, $2 cluster, $3 schedules, $4 lanes (pairwise), $5 definition hashes, $6 clock.
INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, definition_hash, planned_until)
SELECT $1, $2, l.schedule, l.lane, l.definition_hash, coalesce($6::timestamptz, now())
FROM unnest($3::text[], $4::text[], $5::text[]) AS l(schedule, lane, definition_hash)
ON CONFLICT (namespace, cluster, schedule, lane) DO NOTHING;

-- name: LockLanes
-- SKIP LOCKED: while one replica plans a lane, the others skip it instead of queueing behind
-- it; the missed-fire decisions for a lane are therefore made by exactly one replica at a
-- time, and the locks are held only for the short planning transaction, never during a run.
-- $1 namespace, $2 cluster, $3 schedules, $4 lanes (pairwise).
SELECT s.schedule, s.lane, s.definition_hash, s.planned_until, s.backoff_until, s.disabled_at
FROM schedule_lanes s
JOIN unnest($3::text[], $4::text[]) AS l(schedule, lane)
  ON s.schedule = l.schedule AND s.lane = l.lane
WHERE s.namespace = $1 AND s.cluster = $2
FOR UPDATE OF s SKIP LOCKED;

-- name: AdvanceLanes
-- After the pass inserted the fires up to `planned_until`. A changed definition (the user
-- edited the schedule) starts over: counters, backoff and auto-disable are cleared.
-- $1 namespace, $2 cluster, $3 schedules, $4 lanes, $5 planned_until, $6 definition hashes.
UPDATE schedule_lanes s
SET planned_until = greatest(s.planned_until, l.planned_until),
    consecutive_failures = CASE WHEN s.definition_hash = l.definition_hash
                                THEN s.consecutive_failures ELSE 0 END,
    backoff_until = CASE WHEN s.definition_hash = l.definition_hash
                         THEN s.backoff_until END,
    disabled_at = CASE WHEN s.definition_hash = l.definition_hash THEN s.disabled_at END,
    disabled_reason = CASE WHEN s.definition_hash = l.definition_hash
                           THEN s.disabled_reason END,
    definition_hash = l.definition_hash,
    error = NULL, updated_at = now()
FROM unnest($3::text[], $4::text[], $5::timestamptz[], $6::text[])
     AS l(schedule, lane, planned_until, definition_hash)
WHERE s.namespace = $1 AND s.cluster = $2 AND s.schedule = l.schedule AND s.lane = l.lane;

-- name: MarkLaneError
INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, planned_until, error)
VALUES ($1, $2, $3, $4, now(), $5)
ON CONFLICT (namespace, cluster, schedule, lane) DO UPDATE
SET error = EXCLUDED.error, updated_at = now();

-- name: GetLane
SELECT * FROM schedule_lanes
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4;
