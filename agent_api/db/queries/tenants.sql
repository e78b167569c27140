-- The operator's management of tenant roles (agent_api/db/tenants.py), run with its
-- privileged role. DDL takes no bind parameters, so each DDL statement is built by the server
-- with format('%I', '%L'): identifiers and literals are quoted by PostgreSQL itself, whatever
-- the namespace is called.

-- name: LockTenantRole
-- One ensure per role at a time (two operator workers, or two operators during an upgrade):
-- CREATE ROLE of one name by two transactions at once would fail one of them. Held until the
-- transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('agentclusters tenant role ' || $1, 0));

-- name: TenantRoleAttributes
-- The role's attributes and the roles it is a member of, NULL when there is no such role.
SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
       r.rolinherit,
       coalesce(array(SELECT g.rolname::text FROM pg_catalog.pg_auth_members m
                      JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                      WHERE m.member = r.oid ORDER BY 1), '{}') AS member_of
FROM pg_catalog.pg_roles r
WHERE r.rolname = $1;

-- name: CreateTenantRoleStatement
-- $1 role, $2 group.
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'NOBYPASSRLS INHERIT IN ROLE %I', $1::text, $2::text);

-- name: GrantTenantGroupStatement
-- $1 group, $2 role.
SELECT format('GRANT %I TO %I', $1::text, $2::text);

-- name: SetTenantPasswordStatement
-- $1 role, $2 SCRAM-SHA-256 verifier (never the password: the server stores and logs only
-- what it is sent).
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L VALID UNTIL ''infinity''', $1::text, $2::text);

-- name: MapTenantRole
-- The mapping is the authority on who sees a namespace: the namespace maps to this role and
-- no other (a role left from an earlier name of the database loses it). A role name already
-- mapped to another namespace (a hash collision) fails on the primary key.
INSERT INTO tenant_roles (role_name, namespace) VALUES ($1, $2)
ON CONFLICT (namespace) DO UPDATE SET role_name = EXCLUDED.role_name, created_at = now()
WHERE tenant_roles.role_name <> EXCLUDED.role_name;

-- name: CurrentDatabase
-- Part of every tenant role's name: roles are global to the server, databases are not.
SELECT current_database();
