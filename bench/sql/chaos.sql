-- The soak's reads of the runtime's and the operator's tables (bench/chaos/soak.py), after the
-- fact, once the driver has stopped: read-only, so nothing here races the scheduler.

-- name: ChaosRuns
-- Every scheduled run of the soak's cluster whose fire falls in the window: its status says
-- whether the runtime accepted its completion (`succeeded`/`failed`), refused it by fencing
-- (`rejected`), handed the fire back (`released`) or recorded it skipped by policy (`missed`).
SELECT schedule, fire_time, replica, attempt, lease_token, status, error,
       started_at, finished_at
FROM runs
WHERE namespace = $1 AND cluster = $2 AND trigger = 'schedule'
  AND fire_time >= $3 AND fire_time <= $4
ORDER BY id;

-- name: ChaosFireStatuses
-- The fires of the window by status (the runtime's own view, next to the recorder's).
SELECT mode, status, count(*) AS fires
FROM fires
WHERE namespace = $1 AND cluster = $2 AND fire_time >= $3 AND fire_time <= $4
GROUP BY mode, status
ORDER BY mode, status;

-- name: ChaosLaneStarts
-- The first fire of each cluster-mode lane: a replica runs its lane from there on (a lane
-- first seen starts at "now"), so earlier fires were never its to run.
SELECT schedule, replica, min(fire_time) AS first_fire
FROM fires
WHERE namespace = $1 AND cluster = $2 AND mode = 'cluster'
GROUP BY schedule, replica;

-- name: ChaosMembers
-- Every member the cluster ever had, with its ordinal: names are never reused.
SELECT replica, ordinal, registered_at, archived_at
FROM cluster_members
WHERE namespace = $1 AND cluster = $2
ORDER BY ordinal;

-- name: ChaosFiresLeft
-- The drain: fires of the window still to run, single-mode ones and those of cluster-mode
-- lanes whose replica is a live member (an archived member's planned fires never run).
SELECT count(*)
FROM fires f
WHERE f.namespace = $1 AND f.cluster = $2 AND f.fire_time >= $3 AND f.fire_time <= $4
  AND f.status IN ('available', 'running')
  AND (f.replica = '' OR EXISTS (
      SELECT 1 FROM cluster_members m
      WHERE m.namespace = f.namespace AND m.cluster = f.cluster AND m.replica = f.replica
        AND m.archived_at IS NULL));
