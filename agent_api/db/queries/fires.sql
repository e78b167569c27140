-- Every fire statement takes `coalesce($clock, now())` so tests inject a clock; the database
-- clock, never a replica's, decides every lease and every lateness.

-- name: InsertFires
-- Planning, one statement for every lane a planning pass holds (see PlanLanes in lanes.sql).
-- Any replica may plan the same fire: the unique key (schedule, fire_time, replica) makes a
-- second insert a no-op, so no leader election is needed. Arrays are pairwise, one per fire.
-- $1 namespace, $2 cluster, $3 schedules, $4 lanes, $5 modes, $6 functions, $7 exclusive,
-- $8 payloads (json text), $9 max attempts, $10 fire times, $11 late_after, $12 keep_late,
-- $13 definition hashes.
INSERT INTO fires (namespace, cluster, schedule, replica, mode, function, exclusive, payload,
                   max_attempts, fire_time, late_after, keep_late, definition_hash)
SELECT $1, $2, f.schedule, f.lane, f.mode, f.function, f.exclusive, f.payload::jsonb,
       f.max_attempts, f.fire_time, f.late_after, f.keep_late, f.definition_hash
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[],
            $9::integer[], $10::timestamptz[], $11::timestamptz[], $12::integer[], $13::text[])
     AS f(schedule, lane, mode, function, exclusive, payload, max_attempts, fire_time,
          late_after, keep_late, definition_hash)
ON CONFLICT ON CONSTRAINT fires_one_per_slot DO NOTHING;

-- name: PeekWork
-- Read-only, three index probes: what an idle replica asks instead of writing anything.
-- next_due: the earliest fire it could claim (fires_available_idx, in fire_time order);
-- next_late: the earliest moment an unjudged fire becomes late (fires_late_idx);
-- next_expiry: the earliest lease that will expire, not counting its own runs
-- (fires_running_lease_idx). The replica sleeps until the earliest of them (or its crons).
-- $1 namespace, $2 cluster, $3 replica, $4 fire ids this replica is running, $5 clock.
SELECT coalesce($5::timestamptz, now()) AS now,
       (SELECT f.fire_time FROM fires f
        WHERE f.namespace = $1 AND f.cluster = $2 AND f.status = 'available'
          AND f.replica IN ('', $3)
          AND (f.late_ok OR f.late_after IS NULL OR f.late_after >= coalesce($5::timestamptz, now()))
        ORDER BY f.fire_time, f.id LIMIT 1) AS next_due,
       (SELECT f.late_after FROM fires f
        WHERE f.namespace = $1 AND f.cluster = $2 AND f.status = 'available' AND NOT f.late_ok
          AND f.replica IN ('', $3)
        ORDER BY f.late_after LIMIT 1) AS next_late,
       (SELECT f.lease_expires_at FROM fires f
        WHERE f.namespace = $1 AND f.cluster = $2 AND f.status = 'running'
          AND f.replica IN ('', $3) AND f.id <> ALL($4::bigint[])
        ORDER BY f.lease_expires_at LIMIT 1) AS next_expiry;

-- name: ClaimFires
-- Exactly-once claim of up to $4 fires, with their run rows, in one statement.
-- Two index-ordered arms, expired leases first so rescue is never starved by new fires:
-- each arm locks its rows FOR UPDATE SKIP LOCKED, so the rows judged below are rows this
-- transaction owns, and concurrent claimers skip past each other instead of blocking. The
-- locking clause re-evaluates the WHERE on the newest row version, so a row another replica
-- claimed and committed a moment ago no longer qualifies. WITH queries run lazily: the
-- `due` arm is read only as far as the scan limit ($5, a little over $4) still needs rows.
-- Never a fire this replica is still running ($6): after an outage longer than the lease
-- its own expired lease must not be handed back to it as a second, concurrent run.
-- Late fires are not claimable until SweepLateFires judged them (late_ok) or marked them
-- missed. Exclusive lanes (no overlap): a due fire whose lane has a fire running under a
-- live lease is skipped (the probe uses the unique index fires_one_running_per_schedule, one
-- lookup per candidate, never a scan); under an expired lease it waits for the rescue. At
-- most one fire per exclusive lane per batch. If two replicas still race for two fires of
-- one exclusive lane, the unique index rejects one statement and its caller retries.
-- Every claim draws a fresh fencing token from a sequence; the caller commits at once.
-- $1 namespace, $2 cluster, $3 replica, $4 batch size, $5 scan limit, $6 fire ids this
-- replica is running, $7 lease seconds, $8 clock.
WITH clock AS MATERIALIZED (SELECT coalesce($8::timestamptz, now()) AS now),
expired AS (
    SELECT f.id, f.schedule, f.replica, f.exclusive, f.fire_time, true AS rescue
    FROM fires f
    WHERE f.namespace = $1 AND f.cluster = $2 AND f.status = 'running'
      AND f.lease_expires_at <= (SELECT now FROM clock)
      AND f.replica IN ('', $3) AND f.attempt < f.max_attempts
      AND f.id <> ALL($6::bigint[])
    ORDER BY f.lease_expires_at
    LIMIT $5
    FOR UPDATE SKIP LOCKED
),
due AS (
    SELECT f.id, f.schedule, f.replica, f.exclusive, f.fire_time, false AS rescue
    FROM fires f
    WHERE f.namespace = $1 AND f.cluster = $2 AND f.status = 'available'
      AND f.fire_time <= (SELECT now FROM clock)
      AND f.replica IN ('', $3)
      AND (f.late_ok OR f.late_after IS NULL OR f.late_after >= (SELECT now FROM clock))
    ORDER BY f.fire_time, f.id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
),
candidates AS MATERIALIZED (
    SELECT c.*,
           row_number() OVER (PARTITION BY c.schedule, c.replica
                              ORDER BY c.rescue DESC, c.fire_time) AS nth,
           (SELECT r.lease_expires_at > (SELECT now FROM clock)
            FROM fires r
            WHERE NOT c.rescue AND c.exclusive
              AND r.namespace = $1 AND r.cluster = $2 AND r.schedule = c.schedule
              AND r.replica = c.replica AND r.status = 'running' AND r.exclusive) AS sibling_live
    FROM (SELECT * FROM expired UNION ALL (SELECT * FROM due) LIMIT $5) c
),
skipped AS (
    UPDATE fires f
    SET status = 'skipped', finished_at = (SELECT now FROM clock),
        error = 'overlap: the previous run of this schedule is still running'
    FROM candidates c
    WHERE f.id = c.id AND c.sibling_live
    RETURNING f.id
),
chosen AS (
    SELECT id FROM candidates c
    WHERE c.sibling_live IS NULL AND (c.rescue OR NOT c.exclusive OR c.nth = 1)
    ORDER BY c.rescue DESC, c.fire_time, c.id
    LIMIT $4
),
claimed AS (
    UPDATE fires f
    SET status = 'running',
        lease_owner = $3,
        lease_token = nextval('fire_lease_token_seq'),
        lease_expires_at = (SELECT now FROM clock) + make_interval(secs => $7::float8),
        attempt = f.attempt + 1,
        started_at = (SELECT now FROM clock),
        error = NULL
    FROM chosen
    WHERE f.id = chosen.id
    RETURNING f.id, f.namespace, f.cluster, f.schedule, f.fire_time, f.replica, f.mode,
              f.function, f.payload, f.attempt, f.lease_token, f.started_at
),
run AS (
    INSERT INTO runs (namespace, cluster, replica, fire_id, trigger, schedule, fire_time,
                      function, attempt, lease_token, started_at)
    SELECT namespace, cluster, $3, id, 'schedule', schedule, fire_time, function, attempt,
           lease_token, started_at
    FROM claimed
    RETURNING id AS run_id, fire_id
),
superseded AS (
    -- A rescued fire's previous attempt will never be recorded by its replica (it died, froze
    -- past its lease, or never learned of its claim): close its run row now. A late
    -- completion from it finds the row closed and changes nothing.
    UPDATE runs r
    SET status = 'rejected', finished_at = (SELECT now FROM clock),
        error = format('lease expired on attempt %s: the replica stopped renewing it (crashed, '
                       'frozen or cut off); the fire was taken over by %s', r.attempt, $3)
    FROM candidates c
    WHERE c.rescue AND r.fire_id = c.id AND r.status = 'running'
      AND c.id IN (SELECT id FROM claimed)
    RETURNING r.id
)
SELECT c.id, c.schedule, c.fire_time, c.replica, c.mode, c.function, c.payload, c.attempt,
       c.lease_token, r.run_id
FROM claimed c JOIN run r ON r.fire_id = c.id
ORDER BY c.fire_time, c.id;

-- name: RenewLeases
-- Fencing: renew only rows still 'running' under the exact token and owner this replica was
-- handed, and only while the lease is live. Every claim draws a new token under the row
-- lock, so once another replica has taken the fire over, the stale token matches nothing.
-- A renewal that wins the row lock before a rescuer's claim pushes the expiry forward, and
-- the claim's re-check then finds the lease live and skips it: there is never more than one
-- live lease per fire. An expired lease is never revived: its owner has already cancelled
-- the run by its own clock (self-fencing), which runs ahead of the database's.
-- $1 fire ids, $2 tokens (pairwise), $3 owner, $4 lease seconds, $5 clock.
UPDATE fires f
SET lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => $4::float8)
FROM unnest($1::bigint[], $2::bigint[]) AS l(id, token)
WHERE f.id = l.id AND f.lease_token = l.token AND f.lease_owner = $3 AND f.status = 'running'
  AND f.lease_expires_at > coalesce($5::timestamptz, now())
RETURNING f.id;

-- name: CompleteFire
-- One statement finishes the fire, its run row and the lane's failure bookkeeping.
-- Fenced like RenewLeases: a late completion from a replica whose lease was taken over names
-- a stale token and updates no fire and no lane; its run row is recorded 'rejected'.
-- The run row is closed only by the replica and token it belongs to.
-- Idempotent for its own token: a retry after a commit whose reply was lost finds the fire
-- already finished with this outcome under this token ('already'): the lane was counted by
-- the first, committed attempt and is not counted again, and the run row is left as it is.
-- (Every branch reads the statement's snapshot: when `done` matched, `again` still sees
-- 'running' and is empty.) Tokens are never handed out twice, so no other claim can match.
-- The lane: a success resets the failure count; a failure counts one more and applies the
-- schedule's failurePolicy (`+ 1` is this failure, since right-hand sides read the old row).
-- $1 fire id, $2 token, $3 owner, $4 status, $5 error, $6 output (json), $7 run id,
-- $8 policy action, $9 max consecutive failures, $10 backoff base seconds (doubled per
-- consecutive failure, capped at one hour), $11 error recorded when rejected, $12 clock.
WITH done AS (
    UPDATE fires
    SET status = $4, error = $5, finished_at = coalesce($12::timestamptz, now())
    WHERE id = $1 AND lease_token = $2 AND lease_owner = $3 AND status = 'running'
    RETURNING namespace, cluster, schedule, replica
),
again AS (
    SELECT 1 FROM fires
    WHERE id = $1 AND lease_token = $2 AND lease_owner = $3 AND status = $4
),
lane AS (
    UPDATE schedule_lanes l
    SET consecutive_failures = CASE WHEN $4 = 'succeeded' THEN 0
                                    ELSE l.consecutive_failures + 1 END,
        disabled_at = CASE
            WHEN $4 <> 'succeeded' AND $8 = 'disable' AND l.consecutive_failures + 1 >= $9
            THEN coalesce(l.disabled_at, coalesce($12::timestamptz, now()))
            ELSE l.disabled_at END,
        disabled_reason = CASE
            WHEN $4 <> 'succeeded' AND $8 = 'disable' AND l.consecutive_failures + 1 >= $9
            THEN format('disabled after %s consecutive failures', l.consecutive_failures + 1)
            ELSE l.disabled_reason END,
        backoff_until = CASE
            WHEN $4 = 'succeeded' THEN NULL
            WHEN $8 = 'backoff'
            THEN coalesce($12::timestamptz, now())
                 + make_interval(secs => least($10::float8 * power(2, l.consecutive_failures),
                                               3600))
            ELSE l.backoff_until END,
        updated_at = now()
    FROM done
    WHERE l.namespace = done.namespace AND l.cluster = done.cluster
      AND l.schedule = done.schedule AND l.lane = done.replica
      -- A success on a healthy lane changes nothing: leave the row (and its lock) alone, so
      -- the completions of one busy schedule do not queue behind each other on it.
      AND ($4 <> 'succeeded' OR l.consecutive_failures <> 0 OR l.backoff_until IS NOT NULL)
    RETURNING l.consecutive_failures, l.disabled_at, l.backoff_until
),
verdict AS (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM done) THEN 'accepted'
                WHEN EXISTS (SELECT 1 FROM again) THEN 'already'
                ELSE 'rejected' END AS verdict
),
run AS (
    UPDATE runs
    SET status = CASE WHEN v.verdict = 'rejected' THEN 'rejected' ELSE $4 END,
        error = CASE WHEN v.verdict = 'rejected' THEN $11 ELSE $5 END,
        output = $6::jsonb, finished_at = coalesce($12::timestamptz, now())
    FROM verdict v
    WHERE runs.id = $7 AND runs.status = 'running' AND runs.replica = $3
      AND runs.lease_token = $2
    RETURNING runs.id
)
SELECT v.verdict,
       (SELECT consecutive_failures FROM lane) AS consecutive_failures,
       (SELECT disabled_at FROM lane) AS disabled_at,
       (SELECT backoff_until FROM lane) AS backoff_until
FROM verdict v;

-- name: CancelRuledOutFires
-- After a completion disabled a lane or started a backoff (CompleteFire returned it): the
-- fires planned ahead that the failure policy now rules out are cancelled, all of a disabled
-- lane's and a backing-off lane's inside the window. A separate statement, run only then,
-- so that the common completion never looks at other fires. Row lock + status re-check: a
-- fire claimed meanwhile is left to finish.
-- $1 namespace, $2 cluster, $3 schedule, $4 lane, $5 disabled, $6 backoff until, $7 clock.
UPDATE fires
SET status = 'cancelled', finished_at = coalesce($7::timestamptz, now()),
    error = CASE WHEN $5 THEN 'cancelled: the schedule was disabled by its failurePolicy'
                 ELSE 'cancelled: inside the failurePolicy backoff window' END
WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND replica = $4
  AND status = 'available' AND ($5 OR fire_time < $6)
RETURNING id;

-- name: ReleaseFire
-- Fenced: hand an unfinished fire back at once (shutdown, or a run that cancelled itself
-- because it could not renew its lease) so another replica can claim it without waiting for
-- the lease to expire, and close the run row. $4: whether the attempt counts against
-- max_attempts (a shutdown does not count; a self-fenced run does). A stale token releases
-- nothing and the run is recorded 'rejected'. NOTIFY wakes the other replicas of the cluster.
-- $1 fire id, $2 token, $3 owner, $4 count the attempt, $5 run id, $6 run error.
WITH released AS (
    UPDATE fires
    SET status = 'available', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
        attempt = CASE WHEN $4 THEN attempt ELSE greatest(attempt - 1, 0) END,
        started_at = NULL
    WHERE id = $1 AND lease_token = $2 AND lease_owner = $3 AND status = 'running'
    RETURNING namespace, cluster
),
run AS (
    UPDATE runs
    SET status = CASE WHEN EXISTS (SELECT 1 FROM released) THEN 'released' ELSE 'rejected' END,
        error = $6, finished_at = now()
    WHERE id = $5 AND status = 'running' AND replica = $3 AND lease_token = $2
    RETURNING id
)
SELECT (SELECT count(*) FROM released) AS released,
       (SELECT count(pg_notify('agent_fires', namespace || '/' || cluster)) FROM released)
           AS notified;

-- name: CancelStaleFires
-- A new spec generation: fires planned ahead from a schedule that was since removed, edited
-- or disabled (enabled: false) are cancelled, so the old definition stops the moment the
-- new one applies. Row lock + status re-check: a fire claimed meanwhile is left to finish.
-- $1 namespace, $2 cluster, $3 current schedules, $4 their definition hashes (pairwise).
UPDATE fires f
SET status = 'cancelled', finished_at = now(),
    error = 'cancelled: the schedule was changed or removed before this fire ran'
WHERE f.namespace = $1 AND f.cluster = $2 AND f.status = 'available'
  AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS c(schedule, definition_hash)
                  WHERE c.schedule = f.schedule AND c.definition_hash = f.definition_hash)
RETURNING f.id;

-- name: FailAbandonedFires
-- A fire whose lease expired max_attempts times (its runs keep dying) is failed instead of
-- being rescued forever. Row lock + status re-check: a renewal that wins the lock keeps it
-- alive. Only called when PeekWork saw an expired lease, so an idle replica never runs it.
-- $1 namespace, $2 cluster, $3 clock.
-- The abandoned attempt's run row is closed with it.
WITH abandoned AS (
    UPDATE fires
    SET status = 'failed', finished_at = coalesce($3::timestamptz, now()),
        error = format('abandoned: lease expired on attempt %s of %s', attempt, max_attempts)
    WHERE namespace = $1 AND cluster = $2 AND status = 'running'
      AND lease_expires_at <= coalesce($3::timestamptz, now()) AND attempt >= max_attempts
    RETURNING id, error
),
closed AS (
    UPDATE runs r
    SET status = 'failed', finished_at = coalesce($3::timestamptz, now()), error = a.error
    FROM abandoned a
    WHERE r.fire_id = a.id AND r.status = 'running'
    RETURNING r.id
)
SELECT id FROM abandoned;

-- name: SweepLateFires
-- The missed-fire policy, applied to the lanes a planning pass holds locked (so two replicas
-- never judge one lane at once). Per lane, among its available fires past late_after, the
-- newest `keep_late` are kept (late_ok: runOnce keeps 1, backfill N, skip 0) and the others
-- are marked 'missed', each with a run row so that list_runs shows it. The UPDATEs re-check
-- status = 'available' under the row lock, so a fire claimed meanwhile is never touched
-- (only a late_ok fire can be claimed while late).
-- $1 namespace, $2 cluster, $3 schedules, $4 lanes (pairwise), $5 recording replica, $6 clock.
WITH late AS MATERIALIZED (
    SELECT f.id, f.late_ok, f.keep_late,
           row_number() OVER (PARTITION BY f.schedule, f.replica ORDER BY f.fire_time DESC)
               AS nth
    FROM fires f
    JOIN unnest($3::text[], $4::text[]) AS l(schedule, lane)
      ON f.schedule = l.schedule AND f.replica = l.lane
    WHERE f.namespace = $1 AND f.cluster = $2 AND f.status = 'available'
      AND f.late_after < coalesce($6::timestamptz, now())
),
kept AS (
    UPDATE fires f SET late_ok = true
    FROM late
    WHERE f.id = late.id AND late.nth <= late.keep_late AND NOT late.late_ok
      AND f.status = 'available'
    RETURNING f.id
),
missed AS (
    UPDATE fires f
    SET status = 'missed', finished_at = coalesce($6::timestamptz, now()),
        error = format('missed: not started within %s s of its fire time (%s); '
                       'spec.schedules[].missedFireGraceSeconds and missedFirePolicy decide',
                       extract(epoch FROM f.late_after - f.fire_time)::float8, f.fire_time)
    FROM late
    WHERE f.id = late.id AND late.nth > late.keep_late AND f.status = 'available'
    RETURNING f.*
),
run AS (
    INSERT INTO runs (namespace, cluster, replica, fire_id, trigger, schedule, fire_time,
                      function, attempt, status, started_at, finished_at, error)
    SELECT namespace, cluster, $5, id, 'schedule', schedule, fire_time, function, attempt,
           'missed', finished_at, finished_at, error
    FROM missed
    RETURNING schedule
)
SELECT (SELECT count(*) FROM kept) AS kept, (SELECT count(*) FROM run) AS missed;

-- name: RecordMissedSummary
-- A long outage of a frequent schedule: the fires beyond what one planning pass lists
-- individually are counted on the lane and summarised in one 'missed' run row.
-- $1 namespace, $2 cluster, $3 schedule, $4 lane, $5 recording replica, $6 function,
-- $7 count, $8 first missed fire time, $9 last, $10 clock.
WITH lane AS (
    UPDATE schedule_lanes SET missed_total = missed_total + $7, updated_at = now()
    WHERE namespace = $1 AND cluster = $2 AND schedule = $3 AND lane = $4
    RETURNING 1
)
INSERT INTO runs (namespace, cluster, replica, trigger, schedule, fire_time, function, attempt,
                  status, started_at, finished_at, error)
VALUES ($1, $2, $5, 'schedule', $3, $9, $6, 0, 'missed', coalesce($10::timestamptz, now()),
        coalesce($10::timestamptz, now()),
        format('missed %s fires from %s to %s while no replica ran this schedule '
               '(listed individually: only the latest ones)', $7, $8, $9));

-- name: ListFires
SELECT * FROM fires WHERE namespace = $1 AND cluster = $2 ORDER BY fire_time, replica;
