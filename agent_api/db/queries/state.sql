-- name: LockStateScope
-- Serialises writers of one scope for the rest of the transaction, so the total-size check
-- and the write are atomic with respect to other writers of the same scope.
SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 0));

-- name: StateScopeBytes
SELECT coalesce(sum(size_bytes), 0)::bigint AS total
FROM agent_state WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND key <> $4;

-- name: PutState
INSERT INTO agent_state (namespace, cluster, replica, key, value, size_bytes)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (namespace, cluster, replica, key) DO UPDATE
SET value = EXCLUDED.value, size_bytes = EXCLUDED.size_bytes, updated_at = now();

-- name: GetState
SELECT value FROM agent_state
WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND key = $4;

-- name: ListState
SELECT key, value FROM agent_state
WHERE namespace = $1 AND cluster = $2 AND replica = $3 ORDER BY key;

-- name: DeleteState
DELETE FROM agent_state
WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND key = $4;

-- name: HoldLeaseForWrite
-- Fencing for state: a scheduled run's write commits only while its lease token is current.
-- FOR SHARE holds the fire row until the write's transaction ends, so a rescuer's claim (an
-- UPDATE of that row) waits for it: the rescuer's run never reads state from before a write
-- its predecessor is still making, and a write after the takeover matches nothing.
-- $1 fire id, $2 lease token.
SELECT true FROM fires WHERE id = $1 AND lease_token = $2 AND status = 'running' FOR SHARE;
