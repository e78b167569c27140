-- The schema that applying every file in migrations/ produces (checked by
-- tests/integration/db/test_migrate.py). Read this file; change the schema with a new migration.


CREATE TABLE cluster_configs (
    namespace   text        NOT NULL,
    cluster     text        NOT NULL,
    generation  bigint      NOT NULL CHECK (generation >= 0),
    spec        jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, cluster)
);

CREATE TABLE cluster_members (
    namespace      text        NOT NULL,
    cluster        text        NOT NULL,
    replica        text        NOT NULL CHECK (replica <> ''),
    ordinal        integer     NOT NULL CHECK (ordinal >= 0),
    registered_at  timestamptz NOT NULL DEFAULT now(),
    archived_at    timestamptz,
    PRIMARY KEY (namespace, cluster, replica)
);

-- Serves the archive listing (newest first) and the newest archived members in status (0005).
CREATE INDEX cluster_members_archived_idx
    ON cluster_members (namespace, cluster, ordinal DESC, replica DESC)
    WHERE archived_at IS NOT NULL;

-- Names (and ordinals) of members whose cluster was deleted with statePolicy Delete: the rows
-- above are gone, the names stay taken (0005). Only the operator reads it; tenants get no grant.
CREATE TABLE retired_replica_names (
    namespace   text        NOT NULL,
    cluster     text        NOT NULL,
    replica     text        NOT NULL CHECK (replica <> ''),
    ordinal     integer     NOT NULL CHECK (ordinal >= 0),
    retired_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, cluster, replica)
);

-- One planning lane per schedule: lane '' for single mode, the replica name for cluster mode.
-- The planner locks its lane row (SKIP LOCKED) while it inserts fires, so two replicas never
-- make contradicting missed-fire decisions for the same lane.
CREATE TABLE schedule_lanes (
    namespace             text        NOT NULL,
    cluster               text        NOT NULL,
    schedule              text        NOT NULL,
    lane                  text        NOT NULL,
    definition_hash       text        NOT NULL DEFAULT '',
    planned_until        timestamptz NOT NULL,
    consecutive_failures  integer     NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    backoff_until         timestamptz,
    disabled_at           timestamptz,
    disabled_reason       text,
    error                 text,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- 0003: missed fires of long outages counted rather than listed
    missed_total          bigint      NOT NULL DEFAULT 0 CHECK (missed_total >= 0),
    PRIMARY KEY (namespace, cluster, schedule, lane)
);

CREATE SEQUENCE fire_lease_token_seq AS bigint;

-- One row per (schedule, nominal fire time, replica); replica = '' for single mode.
-- High churn: every fire is inserted, updated to running, renewed and finished, so leave room
-- for HOT updates and vacuum the table eagerly.
CREATE TABLE fires (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace         text        NOT NULL,
    cluster           text        NOT NULL,
    schedule          text        NOT NULL,
    fire_time         timestamptz NOT NULL,
    replica           text        NOT NULL DEFAULT '',
    mode              text        NOT NULL CHECK (mode IN ('single', 'cluster')),
    function          text        NOT NULL,
    exclusive         boolean     NOT NULL DEFAULT true,
    payload           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status            text        NOT NULL DEFAULT 'available'
        CHECK (status IN ('available', 'running', 'succeeded', 'failed', 'skipped', 'cancelled',
                          'missed')),
    attempt           integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer     NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    lease_owner       text,
    lease_token       bigint,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    error             text,
    -- 0003: lateness (fire_time + missedFireGraceSeconds), how many late fires of the lane
    -- the missed-fire policy still runs, whether it kept this one, and the definition the
    -- fire was planned from (planned-ahead fires of an edited schedule are cancelled).
    late_after        timestamptz,
    keep_late         integer     NOT NULL DEFAULT 0 CHECK (keep_late >= 0),
    late_ok           boolean     NOT NULL DEFAULT false,
    definition_hash   text        NOT NULL DEFAULT '',
    CONSTRAINT fires_one_per_slot UNIQUE (namespace, cluster, schedule, fire_time, replica),
    CONSTRAINT fires_mode_replica CHECK ((mode = 'single') = (replica = '')),
    CONSTRAINT fires_running_has_lease CHECK (
        status <> 'running'
        OR (lease_owner IS NOT NULL AND lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)
    ),
    CONSTRAINT fires_finished_has_time CHECK (
        status NOT IN ('succeeded', 'failed', 'skipped', 'cancelled', 'missed')
        OR finished_at IS NOT NULL
    )
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

-- Claims scan only live rows: the partial indexes stay small however long the history.
CREATE INDEX fires_available_idx ON fires (namespace, cluster, fire_time, id)
    WHERE status = 'available';
CREATE INDEX fires_late_idx ON fires (namespace, cluster, late_after)
    WHERE status = 'available' AND NOT late_ok;
CREATE INDEX fires_running_lease_idx ON fires (namespace, cluster, lease_expires_at)
    WHERE status = 'running';
-- Retention sweeps one cluster's history at a time (0004).
CREATE INDEX fires_finished_idx ON fires (namespace, cluster, finished_at)
    WHERE status IN ('succeeded', 'failed', 'skipped', 'cancelled', 'missed');
-- No overlapping runs of one exclusive schedule (per lane): the database holds the rule.
CREATE UNIQUE INDEX fires_one_running_per_schedule ON fires (namespace, cluster, schedule, replica)
    WHERE status = 'running' AND exclusive;

-- Every execution attempt, scheduled or not, with the replica that ran it.
CREATE TABLE runs (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace    text        NOT NULL,
    cluster      text        NOT NULL,
    replica      text        NOT NULL,
    fire_id      bigint      REFERENCES fires (id) ON DELETE SET NULL,
    trigger      text        NOT NULL CHECK (trigger IN ('schedule', 'webhook', 'chat', 'manual')),
    schedule     text,
    fire_time    timestamptz,
    function     text        NOT NULL,
    attempt      integer     NOT NULL DEFAULT 1,
    lease_token  bigint,
    status       text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'succeeded', 'failed', 'rejected', 'released', 'missed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    error        text,
    output       jsonb,
    -- why an agent loop ended (0002), derived from the output the runtime writes
    stop_reason  text GENERATED ALWAYS AS (output ->> 'stop_reason') STORED,
    CONSTRAINT runs_output_bounded CHECK (output IS NULL OR octet_length(output::text) <= 8192),
    CONSTRAINT runs_stop_reason_known CHECK (
        stop_reason IS NULL OR stop_reason IN ('completed', 'max_iterations', 'max_tokens',
                                               'max_wall_clock', 'max_function_calls', 'error')
    )
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05);

CREATE INDEX runs_by_replica_idx ON runs (namespace, cluster, replica, started_at);
CREATE INDEX runs_by_fire_idx ON runs (fire_id) WHERE fire_id IS NOT NULL;
CREATE INDEX runs_started_idx ON runs (namespace, cluster, started_at);

-- Key-value state: replica = '' is the cluster-shared scope.
CREATE TABLE agent_state (
    namespace   text        NOT NULL,
    cluster     text        NOT NULL,
    replica     text        NOT NULL,
    key         text        NOT NULL CHECK (key <> '' AND length(key) <= 256),
    value       jsonb       NOT NULL,
    size_bytes  integer     NOT NULL CHECK (size_bytes >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, cluster, replica, key)
);

-- Chat memory: one history per (replica, conversation). The replica is part of every key and
-- every query, so two replicas never read each other's turns even for one conversation id.
CREATE TABLE conversation_turns (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace        text        NOT NULL,
    cluster          text        NOT NULL,
    replica          text        NOT NULL CHECK (replica <> ''),
    conversation_id  text        NOT NULL CHECK (conversation_id <> '' AND length(conversation_id) <= 256),
    role             text        NOT NULL CHECK (role IN ('user', 'assistant')),
    content          text        NOT NULL,
    tokens           integer     NOT NULL CHECK (tokens >= 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX conversation_turns_by_conversation_idx
    ON conversation_turns (namespace, cluster, replica, conversation_id, id);

-- Every message the agent posted (or failed to post) to a channel. A failure is a row with
-- status 'failed' and every attempt's error; nothing is dropped silently. The channel's URL is
-- a credential and is never stored: only the channel's name.
CREATE TABLE channel_deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace    text        NOT NULL,
    cluster      text        NOT NULL,
    replica      text        NOT NULL,
    channel      text        NOT NULL,
    channel_type text        NOT NULL,
    run_id       bigint      REFERENCES runs (id) ON DELETE SET NULL,
    status       text        NOT NULL CHECK (status IN ('delivered', 'failed')),
    attempts     integer     NOT NULL CHECK (attempts >= 0),
    errors       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    message      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT channel_deliveries_failed_has_error CHECK (
        status <> 'failed' OR jsonb_array_length(errors) > 0
    )
);

CREATE INDEX channel_deliveries_by_replica_idx
    ON channel_deliveries (namespace, cluster, replica, created_at);
CREATE INDEX channel_deliveries_failed_idx
    ON channel_deliveries (namespace, cluster, created_at) WHERE status = 'failed';

CREATE TABLE schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Tenant isolation (0004): each namespace's replicas log in with a role of their own (created
-- by agent_api/db/tenants.py, a member of the group agentclusters_tenant), and row-level
-- security lets it see and change only its namespace's rows. The tables' owner (the
-- operator's privileged role, which the gateway also uses) bypasses row-level security as
-- owner, on purpose. LISTEN/NOTIFY and advisory locks are not covered (see 0004).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'agentclusters_tenant') THEN
        CREATE ROLE agentclusters_tenant NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
            NOREPLICATION NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

CREATE TABLE tenant_roles (
    role_name   text        PRIMARY KEY CHECK (role_name ~ '^agentclusters_t_[0-9a-f]{20}$'),
    namespace   text        NOT NULL UNIQUE CHECK (namespace <> '' AND length(namespace) <= 63),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The namespace of the login role (session_user), NULL for any role not in tenant_roles.
-- PL/pgSQL, not SQL: a SQL function with a SET clause is planned again at every call, and
-- each tenant table a statement reads calls this once (ClaimFires: a dozen), which halved
-- the claim rate (`python -m bench --only tenancy`); PL/pgSQL keeps its plan per session.
CREATE FUNCTION agentclusters_tenant_namespace() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT namespace FROM public.tenant_roles WHERE role_name = session_user);
END
$$;

REVOKE ALL ON FUNCTION agentclusters_tenant_namespace() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentclusters_tenant_namespace() TO agentclusters_tenant;

-- `(SELECT fn())`: evaluated once per statement; the indexes on namespace serve it.
ALTER TABLE cluster_configs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON cluster_configs TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));
ALTER TABLE cluster_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON cluster_members TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));
ALTER TABLE schedule_lanes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON schedule_lanes TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));
ALTER TABLE fires ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON fires TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));
ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON runs TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));
ALTER TABLE agent_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON agent_state TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));
ALTER TABLE conversation_turns ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON conversation_turns TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));
ALTER TABLE channel_deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_namespace ON channel_deliveries TO agentclusters_tenant
    USING (namespace = (SELECT agentclusters_tenant_namespace()))
    WITH CHECK (namespace = (SELECT agentclusters_tenant_namespace()));

-- Least privilege: what the runtime executes (see 0004 for each grant's reason).
GRANT USAGE ON SCHEMA public TO agentclusters_tenant;
GRANT SELECT ON cluster_configs TO agentclusters_tenant;
GRANT SELECT, INSERT ON cluster_members TO agentclusters_tenant;
GRANT UPDATE (registered_at) ON cluster_members TO agentclusters_tenant;
GRANT SELECT, INSERT, UPDATE ON schedule_lanes TO agentclusters_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON fires TO agentclusters_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON runs TO agentclusters_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON agent_state TO agentclusters_tenant;
GRANT SELECT, INSERT, DELETE ON conversation_turns TO agentclusters_tenant;
GRANT SELECT, INSERT ON channel_deliveries TO agentclusters_tenant;
GRANT USAGE ON SEQUENCE fire_lease_token_seq TO agentclusters_tenant;
GRANT SELECT ON schema_migrations TO agentclusters_tenant;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
