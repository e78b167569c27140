-- Every statement the benchmarks run against the runtime's own tables. The scheduler's
-- schema is being rewritten: this file (with `drain.seed_due_fires` and `bench/replicas.py`)
-- is what to adapt when it changes. Loaded by `bench.environment.SQL`.

-- name: ClearSchedulingTables
-- Between rounds of one benchmark: no fire, run or lane of the previous round is left.
TRUNCATE fires, runs, schedule_lanes RESTART IDENTITY CASCADE;

-- name: FinishedRuns
-- Progress of a drain: scheduled runs recorded as succeeded so far.
SELECT count(*) FROM runs
WHERE namespace = $1 AND cluster = $2 AND trigger = 'schedule' AND status = 'succeeded';

-- name: DrainOutcome
-- The drain's end on the database clock (the last run written), and the exactly-once check:
-- every fire succeeded, and it has exactly one run, which succeeded.
SELECT
    (SELECT max(finished_at) FROM runs WHERE namespace = $1 AND cluster = $2) AS last_finished,
    (SELECT count(*) FROM fires WHERE namespace = $1 AND cluster = $2) AS fires,
    (SELECT count(*) FROM fires WHERE namespace = $1 AND cluster = $2 AND status = 'succeeded')
        AS fires_succeeded,
    (SELECT count(*) FROM runs WHERE namespace = $1 AND cluster = $2 AND trigger = 'schedule')
        AS runs,
    (SELECT count(DISTINCT fire_id) FROM runs
     WHERE namespace = $1 AND cluster = $2 AND trigger = 'schedule' AND status = 'succeeded')
        AS fires_with_a_succeeded_run;

-- name: FiresAt
-- The fires planned for one nominal time, by status (missed fires under the `skip` policy
-- have no row at all).
SELECT status, count(*) AS fires FROM fires
WHERE namespace = $1 AND cluster = $2 AND fire_time = $3
GROUP BY status;

-- name: UnfinishedFiresAt
SELECT count(*) FROM fires
WHERE namespace = $1 AND cluster = $2 AND fire_time = $3 AND status IN ('available', 'running');

-- name: FirstRunsAt
-- Lateness of each schedule's fire at one nominal time: its first run's start minus the
-- nominal time, in seconds (the first attempt is what a user waits for). A `missed` row
-- (scheduler v2 records missed fires as runs) is no execution and has no lateness.
SELECT schedule,
       extract(epoch FROM min(started_at) - $3::timestamptz)::float8 AS lateness_seconds,
       bool_or(status = 'succeeded') AS succeeded
FROM runs
WHERE namespace = $1 AND cluster = $2 AND trigger = 'schedule' AND fire_time = $3
  AND status <> 'missed'
GROUP BY schedule;

-- name: VacuumFires
-- After seeding: fresh statistics, so the claim's plan is the one a settled table gets.
VACUUM ANALYZE fires;

-- name: AvailableFires
SELECT count(*) FROM fires WHERE namespace = $1 AND cluster = $2 AND status = 'available';
