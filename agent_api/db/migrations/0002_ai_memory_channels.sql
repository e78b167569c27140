-- 0002: the AI engine: stop reasons in run history, per-replica conversation memory,
-- channel deliveries. Applied by agent_api.db.migrate; never edited once released.

-- Why an agent loop ended, kept next to the run. Derived from the run's output (the runtime
-- writes `output.stop_reason`), so every writer of runs stays as it is and the value can never
-- disagree with the stored output.
ALTER TABLE runs
    ADD COLUMN stop_reason text GENERATED ALWAYS AS (output ->> 'stop_reason') STORED,
    ADD CONSTRAINT runs_stop_reason_known CHECK (
        stop_reason IS NULL OR stop_reason IN ('completed', 'max_iterations', 'max_tokens',
                                               'max_wall_clock', 'max_function_calls', 'error')
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
