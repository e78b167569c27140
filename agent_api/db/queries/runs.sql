-- name: InsertRun
-- A run not tied to a fire (webhook, manual, chat). Scheduled runs are written by ClaimFires.
INSERT INTO runs (namespace, cluster, replica, trigger, function)
VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: FinishRun
UPDATE runs SET status = $2, error = $3, output = $4::jsonb, finished_at = now()
WHERE id = $1;

-- name: ListRuns
-- Run history by agent, optionally by replica, newest first.
SELECT * FROM runs
WHERE namespace = $1 AND cluster = $2 AND ($3::text IS NULL OR replica = $3)
ORDER BY started_at DESC, id DESC
LIMIT $4;

-- name: GetRun
-- One run of one agent (the gateway's get_run): the id alone is not enough, so a caller
-- allowed to read one agent cannot read another's runs by guessing ids.
SELECT * FROM runs
WHERE namespace = $1 AND cluster = $2 AND id = $3;
