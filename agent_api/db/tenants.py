"""Each namespace's own PostgreSQL role: its name, its password, the URL its replicas use.

The operator (its privileged role: CREATEROLE, owner of the schema) calls `ensure_role` for
every namespace with AgentClusters and hands `tenant_url(...)` to that namespace's replicas.
Row-level security (migration 0004) lets such a role see and change only the rows of the
namespace `tenant_roles` maps it to.

- The role name is derived from the database and the namespace (`agentclusters_t_<hash>`):
  deterministic, a valid identifier for any namespace, and distinct per database, since roles
  are global to a PostgreSQL server and two installations may share one.
- The password reaches PostgreSQL only as a SCRAM-SHA-256 verifier computed here: the
  plaintext is never sent, so it is in no server log and no `pg_stat_activity` row.
- DDL takes no bind parameters: the server quotes every identifier and literal with
  `format('%I', '%L')` (queries/tenants.sql) and the result is executed as built.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from agent_api.db import queries

GROUP_ROLE = "agentclusters_tenant"
ROLE_PREFIX = "agentclusters_t_"
# PostgreSQL's own default (scram_iterations); a login costs the client this many rounds.
SCRAM_ITERATIONS = 4096
MIN_PASSWORD_LENGTH = 16
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
_URL_SCHEMES = ("postgresql", "postgres")
# Query parameters that would override the credentials in the URL's user info.
_CREDENTIAL_PARAMETERS = ("user", "password", "passfile")

# The attributes a tenant role must not have, as pg_roles names them and as ALTER ROLE does.
_FORBIDDEN_ATTRIBUTES = {"rolsuper": "SUPERUSER", "rolcreatedb": "CREATEDB",
                         "rolcreaterole": "CREATEROLE", "rolreplication": "REPLICATION",
                         "rolbypassrls": "BYPASSRLS"}


class TenantRoleError(Exception):
    """The namespace's role exists but is not a tenant role the operator may hand out."""


def check_namespace(namespace: str) -> None:
    """A Kubernetes namespace name (RFC 1123 label), or ValueError saying what is wrong."""
    if not 0 < len(namespace) <= 63 or not _NAMESPACE.match(namespace):
        raise ValueError(f"namespace {namespace!r} is not a Kubernetes namespace name "
                         "(1-63 characters: lower-case letters, digits and '-', starting and "
                         "ending with a letter or digit)")


def role_name(database: str, namespace: str) -> str:
    """The login role of `namespace`'s replicas in `database` (36 characters)."""
    check_namespace(namespace)
    digest = hashlib.sha256(f"{database}\0{namespace}".encode()).hexdigest()
    return ROLE_PREFIX + digest[:20]


def new_password() -> str:
    """256 random bits, URL-safe (no escaping needed, but tenant_url escapes anyway)."""
    return secrets.token_urlsafe(32)


def password_acceptable(password: str | None) -> bool:
    """Whether a password found in a Secret may stay: long enough, and printable ASCII, for
    which SASLprep (which the client applies before SCRAM) changes nothing, so the verifier
    computed here matches what the client proves."""
    return (password is not None and len(password) >= MIN_PASSWORD_LENGTH
            and _PRINTABLE_ASCII.match(password) is not None)


def scram_sha256_verifier(password: str, *, salt: bytes | None = None,
                          iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677), in
    the form `ALTER ROLE ... PASSWORD` accepts as already encrypted."""
    if not _PRINTABLE_ASCII.match(password):
        raise ValueError("the password must be printable ASCII (SASLprep would change others)")
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return (f"SCRAM-SHA-256${iterations}:{_b64(salt)}"
            f"${_b64(stored_key)}:{_b64(server_key)}")


def tenant_url(base_url: str, role: str, password: str) -> str:
    """`base_url` (host, port, database, options) with `role` and `password` as its
    credentials, each percent-escaped; credentials in the query string are dropped."""
    parts = urlsplit(base_url)
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(f"database URL must start with postgresql:// (got {parts.scheme!r}://)")
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts and not parts.query:
        raise ValueError("database URL names no host")
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
             if key not in _CREDENTIAL_PARAMETERS]
    userinfo = f"{quote(role, safe='')}:{quote(password, safe='')}"
    return urlunsplit((parts.scheme, f"{userinfo}@{hosts}", parts.path, urlencode(query),
                       parts.fragment))


def url_credentials(url: str) -> tuple[str | None, str | None]:
    """The (user, password) a database URL carries, unescaped."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) if colon else None


async def role_for(conn: asyncpg.Connection, namespace: str) -> str:
    """`role_name` of `namespace` in the database `conn` is connected to."""
    return role_name(await conn.fetchval(queries.SQL["CurrentDatabase"]), namespace)


async def ensure_role(conn: asyncpg.Connection, namespace: str, password: str) -> str:
    """Create `namespace`'s role if it is missing, check it, make `password` its password and
    map it to the namespace; return its name. Idempotent; one transaction."""
    check_namespace(namespace)
    if not password_acceptable(password):
        raise ValueError(f"a tenant password needs at least {MIN_PASSWORD_LENGTH} printable "
                         "ASCII characters")
    role = await role_for(conn, namespace)
    verifier = scram_sha256_verifier(password)
    async with conn.transaction():
        await conn.execute(queries.SQL["LockTenantRole"], role)
        found = await conn.fetchrow(queries.SQL["TenantRoleAttributes"], role)
        if found is None:
            await _ddl(conn, "CreateTenantRoleStatement", role, GROUP_ROLE)
        else:
            _check_attributes(role, namespace, found)
            if GROUP_ROLE not in found["member_of"]:
                await _ddl(conn, "GrantTenantGroupStatement", GROUP_ROLE, role)
        await _ddl(conn, "SetTenantPasswordStatement", role, verifier)
        await conn.execute(queries.SQL["MapTenantRole"], role, namespace)
    return role


async def _ddl(conn: asyncpg.Connection, name: str, *args: str) -> None:
    """Execute the statement the server builds (and quotes) from query `name`."""
    await conn.execute(await conn.fetchval(queries.SQL[name], *args))


def _check_attributes(role: str, namespace: str, found: asyncpg.Record) -> None:
    problems = [attribute for column, attribute in _FORBIDDEN_ATTRIBUTES.items() if found[column]]
    if not found["rolinherit"]:
        problems.append("NOINHERIT (it would not get the group's privileges)")
    others = sorted(set(found["member_of"]) - {GROUP_ROLE})
    if others:
        problems.append("membership in " + ", ".join(others))
    if problems:
        raise TenantRoleError(
            f"PostgreSQL role {role} (the tenant role of namespace {namespace}) has "
            f"{'; '.join(problems)}. A tenant role is a plain LOGIN role, member of "
            f"{GROUP_ROLE} only. Fix it as a superuser (ALTER ROLE / REVOKE), or DROP ROLE "
            "it and the operator creates it again.")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
