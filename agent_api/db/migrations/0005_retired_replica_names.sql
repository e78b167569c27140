-- 0005: replica names outlive a statePolicy Delete. Names are unique in a namespace and never
-- given out again; the operator's allocation reads every name the namespace ever had from
-- PostgreSQL (AgentCluster statuses keep only the newest archived members). Deleting a cluster
-- with statePolicy Delete removes its members' rows, state and history; the names (and the
-- ordinals, which keep increasing for a cluster recreated under the same name) move here, so
-- a new replica never inherits what is left under an old name (conversation turns, channel
-- deliveries, Redis keys) or an old name's meaning.
--
-- Only the operator reads or writes this table: tenants get no grant, so row-level security
-- is not needed (as for tenant_roles).
CREATE TABLE retired_replica_names (
    namespace   text        NOT NULL,
    cluster     text        NOT NULL,
    replica     text        NOT NULL CHECK (replica <> ''),
    ordinal     integer     NOT NULL CHECK (ordinal >= 0),
    retired_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, cluster, replica)
);

-- The operator's paginated listing of a cluster's archived members, newest first, and the
-- newest few it copies into the AgentCluster's status.
CREATE INDEX cluster_members_archived_idx
    ON cluster_members (namespace, cluster, ordinal DESC, replica DESC)
    WHERE archived_at IS NOT NULL;
