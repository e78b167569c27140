-- 0003: scheduler v2. Fires are planned a short horizon ahead and claimed in batches; a fire
-- that could not start in time is recorded as `missed` (never dropped without a trace); the
-- claim writes the run row itself. Applied by agent_api.db.migrate; never edited once released.

-- `late_after` = fire_time + the schedule's missedFireGraceSeconds: an available fire past it
-- is not claimed until the missed-fire policy has judged it (SweepLateFires). `keep_late` is
-- how many late fires of the lane the policy still runs (skip 0, runOnce 1, backfill N);
-- `late_ok` marks the ones it kept.
ALTER TABLE fires
    ADD COLUMN late_after timestamptz,
    ADD COLUMN keep_late  integer NOT NULL DEFAULT 0 CHECK (keep_late >= 0),
    ADD COLUMN late_ok    boolean NOT NULL DEFAULT false,
    -- the schedule definition a fire was planned from: planned-ahead fires of an edited or
    -- removed schedule are cancelled when the new spec applies (CancelStaleFires)
    ADD COLUMN definition_hash text NOT NULL DEFAULT '',
    DROP CONSTRAINT fires_status_check,
    ADD CONSTRAINT fires_status_check CHECK (status IN (
        'available', 'running', 'succeeded', 'failed', 'skipped', 'cancelled', 'missed')),
    DROP CONSTRAINT fires_finished_has_time,
    ADD CONSTRAINT fires_finished_has_time CHECK (
        status NOT IN ('succeeded', 'failed', 'skipped', 'cancelled', 'missed')
        OR finished_at IS NOT NULL);

-- Claims read due fires in fire_time order (this index, LIMIT n) and expired leases in expiry
-- order (fires_running_lease_idx): both arms of the claim are index-ordered range scans.
DROP INDEX fires_available_idx;
CREATE INDEX fires_available_idx ON fires (namespace, cluster, fire_time, id)
    WHERE status = 'available';
-- "Is anything late?" is one index probe, so an idle replica's check stays cheap.
CREATE INDEX fires_late_idx ON fires (namespace, cluster, late_after)
    WHERE status = 'available' AND NOT late_ok;
DROP INDEX fires_finished_idx;
CREATE INDEX fires_finished_idx ON fires (finished_at)
    WHERE status IN ('succeeded', 'failed', 'skipped', 'cancelled', 'missed');

-- A missed fire is a run row too (status 'missed'), so list_runs shows it.
ALTER TABLE runs
    DROP CONSTRAINT runs_status_check,
    ADD CONSTRAINT runs_status_check CHECK (
        status IN ('running', 'succeeded', 'failed', 'rejected', 'released', 'missed'));

-- Fires older than one planning pass may list individually; the rest of a long outage is
-- counted here (and in one summary run row), so nothing is dropped without a trace.
ALTER TABLE schedule_lanes
    ADD COLUMN missed_total bigint NOT NULL DEFAULT 0 CHECK (missed_total >= 0);
