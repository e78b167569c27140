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
