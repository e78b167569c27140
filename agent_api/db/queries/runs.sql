-- name: InsertRun
-- Idempotent for a scheduled run: the runtime retries this insert when the connection drops,
-- and an insert that committed just before the drop must not leave a second, never-finished
-- row. A (fire, lease token) pair is one attempt by one replica, so it names the run; runs
-- without a token (webhook, manual) always insert.
WITH existing AS (
    SELECT id FROM runs
    WHERE $10::bigint IS NOT NULL AND fire_id = $4 AND lease_token = $10::bigint
), inserted AS (
    INSERT INTO runs (namespace, cluster, replica, fire_id, trigger, schedule, fire_time,
                      function, attempt, lease_token)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    RETURNING id
)
SELECT id FROM inserted
UNION ALL
SELECT id FROM existing;

-- name: FinishRun
UPDATE runs SET status = $2, error = $3, output = $4::jsonb, finished_at = now()
WHERE id = $1;

-- name: ListRuns
-- Run history by agent, optionally by replica, newest first.
SELECT * FROM runs
WHERE namespace = $1 AND cluster = $2 AND ($3::text IS NULL OR replica = $3)
ORDER BY started_at DESC, id DESC
LIMIT $4;
