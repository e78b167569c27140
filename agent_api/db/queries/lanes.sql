-- name: DatabaseNow
-- The database clock decides every deadline; $1 lets tests inject a controlled clock.
SELECT coalesce($1::timestamptz, now()) AS now;

-- name: EnsureLane
-- A lane seen for the first time starts at "now": fires before it are not missed fires.
INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, definition_hash, planned_until)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (namespace, cluster, schedule, lane) DO NOTHING;

-- name: LockLane
-- SKIP LOCKED: while one replica plans a lane, the others skip it instead of queueing behind
-- it; the planner's missed-fire decision is therefore made by exactly one replica at a time,
-- and the lock is held only for the short planning transaction, never during a run.
SELECT definition_hash, planned_until, consecutive_failures, backoff_until, disabled_at
FROM schedule_lanes
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4
FOR UPDATE SKIP LOCKED;

-- name: ResetLaneDefinition
-- A changed schedule definition starts over: counters, backoff and auto-disable are cleared.
UPDATE schedule_lanes
SET definition_hash = $5, consecutive_failures = 0, backoff_until = NULL, disabled_at = NULL,
    disabled_reason = NULL, error = NULL, updated_at = now()
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4;

-- name: AdvanceLane
UPDATE schedule_lanes
SET planned_until = greatest(planned_until, $5), error = NULL, updated_at = now()
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4;

-- name: MarkLaneError
INSERT INTO schedule_lanes (namespace, cluster, schedule, lane, planned_until, error)
VALUES ($1, $2, $3, $4, now(), $5)
ON CONFLICT (namespace, cluster, schedule, lane) DO UPDATE
SET error = EXCLUDED.error, updated_at = now();

-- name: RecordLaneSuccess
UPDATE schedule_lanes SET consecutive_failures = 0, backoff_until = NULL, updated_at = now()
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4;

-- name: RecordLaneFailure
-- Only called after the run's completion passed the fencing check, so a zombie's late failure
-- never counts. Right-hand sides read the old row, so "+ 1" is this failure.
-- $5 action ('continue' | 'disable' | 'backoff'), $6 max consecutive failures, $7 backoff base
-- seconds (doubled per consecutive failure, capped at one hour), $8 injectable clock.
UPDATE schedule_lanes
SET consecutive_failures = consecutive_failures + 1,
    disabled_at = CASE
        WHEN $5 = 'disable' AND consecutive_failures + 1 >= $6
        THEN coalesce(disabled_at, coalesce($8::timestamptz, now())) ELSE disabled_at END,
    disabled_reason = CASE
        WHEN $5 = 'disable' AND consecutive_failures + 1 >= $6
        THEN format('disabled after %s consecutive failures', consecutive_failures + 1)
        ELSE disabled_reason END,
    backoff_until = CASE
        WHEN $5 = 'backoff'
        THEN coalesce($8::timestamptz, now())
             + make_interval(secs => least($7::float8 * power(2, consecutive_failures), 3600))
        ELSE backoff_until END,
    updated_at = now()
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4
RETURNING consecutive_failures, disabled_at, backoff_until;

-- name: GetLane
SELECT * FROM schedule_lanes
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4;
