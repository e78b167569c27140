-- name: InsertFires
-- Any replica may plan the same fire: the unique key (schedule, fire_time, replica) makes the
-- second insert a no-op, so no leader election is needed.
INSERT INTO fires (namespace, cluster, schedule, fire_time, replica, mode, function, exclusive,
                   payload, max_attempts)
SELECT $1, $2, $3, t, $4, $5, $6, $7, $8::jsonb, $9
FROM unnest($10::timestamptz[]) AS t
ON CONFLICT ON CONSTRAINT fires_one_per_slot DO NOTHING
RETURNING id, fire_time;

-- name: ClaimFire
-- Exactly-once claim. The CTE picks one candidate row and locks it FOR UPDATE SKIP LOCKED, so
-- the LIMIT is applied to rows this transaction owns (no other claimer can hold or take them)
-- and concurrent claimers skip past each other instead of blocking. The locking clause
-- re-evaluates the WHERE on the newest row version, so a row another replica claimed and
-- committed a moment ago no longer qualifies. The UPDATE sets a fresh fencing token from a
-- sequence; the caller commits at once and never holds this transaction during the run.
-- Expired leases are ordered first so rescue is never starved by a stream of new fires.
-- An 'available' fire of an exclusive schedule waits while a sibling is running; if two
-- replicas still race, the partial unique index fires_one_running_per_schedule rejects one.
-- $1 namespace, $2 cluster, $3 replica, $4 lease seconds, $5 injectable clock.
WITH candidate AS (
    SELECT f.id
    FROM fires f
    WHERE f.namespace = $1 AND f.cluster = $2
      AND (f.replica = '' OR f.replica = $3)
      AND (
          (f.status = 'running'
           AND f.lease_expires_at <= coalesce($5::timestamptz, now())
           AND f.attempt < f.max_attempts)
          OR (f.status = 'available'
              AND NOT (f.exclusive AND EXISTS (
                  SELECT 1 FROM fires r
                  WHERE r.namespace = f.namespace AND r.cluster = f.cluster
                    AND r.schedule = f.schedule AND r.replica = f.replica
                    AND r.status = 'running' AND r.exclusive)))
      )
    ORDER BY (f.status = 'running') DESC, f.fire_time, f.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE fires f
SET status = 'running',
    lease_owner = $3,
    lease_token = nextval('fire_lease_token_seq'),
    lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => $4::float8),
    attempt = f.attempt + 1,
    started_at = coalesce($5::timestamptz, now()),
    error = NULL
FROM candidate
WHERE f.id = candidate.id
RETURNING f.id, f.schedule, f.fire_time, f.replica, f.mode, f.function, f.payload, f.attempt,
          f.lease_token, f.lease_expires_at;

-- name: RenewLeases
-- Fencing: renew only rows still 'running' under the exact token this replica was handed.
-- Every claim draws a new token under the row lock, so once another replica has taken the
-- fire over, the stale token matches nothing and the renewal is rejected. A renewal that wins
-- the row lock before a rescuer's claim pushes the expiry forward, and the claim's re-check
-- then finds the lease live and skips it: there is never more than one live lease per fire.
-- $1 fire ids, $2 tokens (pairwise), $3 lease seconds, $4 injectable clock.
UPDATE fires f
SET lease_expires_at = coalesce($4::timestamptz, now()) + make_interval(secs => $3::float8)
FROM unnest($1::bigint[], $2::bigint[]) AS l(id, token)
WHERE f.id = l.id AND f.lease_token = l.token AND f.status = 'running'
RETURNING f.id;

-- name: CompleteFire
-- Fenced like RenewLeases: a late completion from a replica whose lease was taken over names
-- a stale token and updates nothing; the caller records that run as 'rejected'.
-- Idempotent for its own token: a retry after a commit whose reply was lost finds the row
-- already finished with this outcome under this token, and reports success. Tokens are never
-- handed out twice, so no other claim's outcome can match. (Both branches read the statement's
-- snapshot: when the UPDATE matched, the second branch still sees 'running' and adds nothing.)
WITH done AS (
    UPDATE fires
    SET status = $3, error = $4, finished_at = coalesce($5::timestamptz, now())
    WHERE id = $1 AND lease_token = $2 AND status = 'running'
    RETURNING id
)
SELECT id FROM done
UNION ALL
SELECT id FROM fires WHERE id = $1 AND lease_token = $2 AND status = $3;

-- name: ReleaseFire
-- Fenced: hand an unfinished fire back at once (shutdown) so another replica can claim it
-- without waiting for the lease to expire. The attempt is not counted against it.
UPDATE fires
SET status = 'available', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
    attempt = greatest(attempt - 1, 0), started_at = NULL
WHERE id = $1 AND lease_token = $2 AND status = 'running'
RETURNING id;

-- name: SkipOverlappingFires
-- Overlap forbidden: a due fire of an exclusive schedule whose earlier fire is still running
-- under a live lease is skipped, not queued. Rows being claimed right now are locked; this
-- UPDATE waits for them and re-checks status = 'available', so it never skips a claimed fire.
UPDATE fires f
SET status = 'skipped', finished_at = coalesce($4::timestamptz, now()),
    error = 'overlap: the previous run of this schedule is still running'
WHERE f.namespace = $1 AND f.cluster = $2 AND (f.replica = '' OR f.replica = $3)
  AND f.status = 'available' AND f.exclusive
  AND EXISTS (
      SELECT 1 FROM fires r
      WHERE r.namespace = f.namespace AND r.cluster = f.cluster
        AND r.schedule = f.schedule AND r.replica = f.replica
        AND r.status = 'running' AND r.exclusive
        AND r.fire_time < f.fire_time
        AND r.lease_expires_at > coalesce($4::timestamptz, now()))
RETURNING f.id;

-- name: FailAbandonedFires
-- A fire whose lease expired max_attempts times (its runs keep dying) is failed instead of
-- being rescued forever. Row lock + status re-check: a renewal that wins the lock keeps it alive.
UPDATE fires
SET status = 'failed', finished_at = coalesce($3::timestamptz, now()),
    error = format('abandoned: lease expired on attempt %s of %s', attempt, max_attempts)
WHERE namespace = $1 AND cluster = $2 AND status = 'running'
  AND lease_expires_at <= coalesce($3::timestamptz, now()) AND attempt >= max_attempts
RETURNING id;

-- name: ListFires
SELECT * FROM fires WHERE namespace = $1 AND cluster = $2 ORDER BY fire_time, replica;
