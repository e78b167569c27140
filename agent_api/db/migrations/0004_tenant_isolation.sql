-- 0004: tenant isolation. Each namespace's replicas log in with a role of their own
-- (agent_api/db/tenants.py creates it); row-level security lets that role see and change only
-- its namespace's rows, and the grants below are all it may do: no DDL, no other table.
--
-- The tables' owner is the privileged role that applies migrations (the operator's, which the
-- gateway also uses). An owner bypasses row-level security (no FORCE ROW LEVEL SECURITY here,
-- on purpose): the operator writes every namespace's spec and archives every namespace's
-- members, and the gateway serves every namespace.
--
-- Not covered by row-level security, and so still shared between tenants: LISTEN/NOTIFY
-- channels (a tenant can LISTEN to agent_config / agent_fires and learn other namespaces' and
-- clusters' names and activity, or NOTIFY them to make their replicas look again) and
-- advisory locks (a tenant can hold another scope's state lock or the migration lock, a
-- denial of service, never a read or a write). Connections, CPU and statement time are not
-- divided between tenants either.

-- The group every tenant role belongs to; the grants below are its privileges. Roles are
-- global to the PostgreSQL server: another database of the same server may have created it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'agentclusters_tenant') THEN
        CREATE ROLE agentclusters_tenant NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
            NOREPLICATION NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created by a concurrent migration of another database
END
$$;

-- Which namespace each tenant login role belongs to. Only the owner reads or writes it; the
-- policies read it through agentclusters_tenant_namespace().
CREATE TABLE tenant_roles (
    role_name   text        PRIMARY KEY CHECK (role_name ~ '^agentclusters_t_[0-9a-f]{20}$'),
    namespace   text        NOT NULL UNIQUE CHECK (namespace <> '' AND length(namespace) <= 63),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The namespace of the role that logged in. session_user, not current_user: inside a
-- SECURITY DEFINER function current_user is the owner, and SET ROLE (to the group) changes
-- current_user but never the login. A role not in tenant_roles gets NULL, which matches no
-- row. SECURITY DEFINER so that tenants need no access to tenant_roles; search_path pinned
-- (and the table schema-qualified) so that nothing a caller creates can stand in for it.
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

-- One policy per tenant table, for reads (USING) and for the rows a write leaves (WITH
-- CHECK). `(SELECT fn())` is an InitPlan: evaluated once per statement, and a plain
-- `namespace = $n` to the planner, so the (namespace, cluster, ...) indexes serve it.
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

-- What the runtime executes (agent_api/db/queries/*.sql, the runtime's calls), nothing more.
-- The spec is the operator's to write: SELECT only. Members register themselves (INSERT);
-- MemberArchived reads its row FOR SHARE, which needs UPDATE on some column: registered_at,
-- the one whose change means nothing (archived_at would let a replica un-archive itself).
-- Lanes are never deleted by a runtime (the operator deletes a cluster's data). Fires and
-- runs are deleted by the retention sweep, state by the state tools, conversation turns by
-- the memory trim. Channel deliveries are written once (RETURNING id needs SELECT).
-- Identity columns need no sequence grant; the fencing-token sequence does.
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
-- A runtime waits until the schema has the version its code needs.
GRANT SELECT ON schema_migrations TO agentclusters_tenant;

-- No one but the owner creates objects in the schema (PostgreSQL 15 already starts this way;
-- older clusters upgraded in place do not), and no tenant creates temporary tables.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;

-- The retention sweep deletes one cluster's history (it applies that cluster's
-- limits.historyRetentionHours): its indexes start with the cluster. runs_started_idx also
-- serves run listings, which are per cluster too.
DROP INDEX fires_finished_idx;
CREATE INDEX fires_finished_idx ON fires (namespace, cluster, finished_at)
    WHERE status IN ('succeeded', 'failed', 'skipped', 'cancelled', 'missed');
DROP INDEX runs_started_idx;
CREATE INDEX runs_started_idx ON runs (namespace, cluster, started_at);
