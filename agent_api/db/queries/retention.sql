-- name: DeleteOldFires
-- Batched so one sweep never holds many row locks; only finished rows are eligible, so the
-- sweep never races a claim (claims touch 'available' and 'running' rows only).
DELETE FROM fires WHERE id IN (
    SELECT id FROM fires
    WHERE status IN ('succeeded', 'failed', 'skipped', 'cancelled')
      AND finished_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1::float8)
    LIMIT $2
);

-- name: DeleteOldRuns
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs
    WHERE status <> 'running'
      AND started_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1::float8)
    LIMIT $2
);
