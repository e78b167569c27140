-- name: DeleteOldFires
-- One cluster's history: the retention is that cluster's setting (limits.historyRetentionHours)
-- and must not reach any other cluster's or namespace's rows (fires_finished_idx leads with
-- the cluster). Batched so one sweep never holds many row locks; only finished rows are
-- eligible, so the sweep never races a claim (claims touch 'available' and 'running' rows
-- only). $1 namespace, $2 cluster, $3 retention seconds, $4 batch size, $5 clock.
DELETE FROM fires WHERE id IN (
    SELECT id FROM fires
    WHERE namespace = $1 AND cluster = $2
      AND status IN ('succeeded', 'failed', 'skipped', 'cancelled')
      AND finished_at < coalesce($5::timestamptz, now()) - make_interval(secs => $3::float8)
    LIMIT $4
);

-- name: DeleteOldRuns
-- One cluster's run history, as DeleteOldFires (runs_started_idx leads with the cluster).
-- $1 namespace, $2 cluster, $3 retention seconds, $4 batch size, $5 clock.
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs
    WHERE namespace = $1 AND cluster = $2
      AND status <> 'running'
      AND started_at < coalesce($5::timestamptz, now()) - make_interval(secs => $3::float8)
    LIMIT $4
);
