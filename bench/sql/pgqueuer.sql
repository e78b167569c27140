-- Reads of pgqueuer's tables (default names, pgqueuer 1.6.0) for the drain comparison.

-- name: PgqueuerReset
TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY;

-- name: PgqueuerSucceeded
SELECT count(*) FROM pgqueuer_log WHERE status = 'successful';

-- name: PgqueuerOutcome
-- The drain's end (the last completion logged) and the exactly-once check: every job logged
-- successful once, none failed, the queue empty.
SELECT
    (SELECT max(created) FROM pgqueuer_log WHERE status = 'successful') AS last_finished,
    (SELECT count(*) FROM pgqueuer_log WHERE status = 'successful') AS successful,
    (SELECT count(DISTINCT job_id) FROM pgqueuer_log WHERE status = 'successful') AS distinct_jobs,
    (SELECT count(*) FROM pgqueuer_log WHERE status IN ('exception', 'failed', 'canceled'))
        AS failed,
    (SELECT count(*) FROM pgqueuer) AS left_in_queue;

-- name: PgqueuerVacuum
VACUUM ANALYZE pgqueuer;
