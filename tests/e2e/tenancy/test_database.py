"""Each namespace's replicas reach PostgreSQL with a role of their own: the operator writes it
into the namespace's runtime Secret, the replicas run with it, it sees only its namespace's
rows, and a rotation asked for on the Secret replaces the password and rolls the pods."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest
from kubernetes import client

from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.tenancy.conftest import RUNTIME_SECRET, runtime_secret_value

pytestmark = pytest.mark.e2e

ROTATE = "agentclusters.io/rotate-credentials"


def secret_url(core: client.CoreV1Api, namespace: str) -> str:
    return runtime_secret_value(core, namespace, "DATABASE_URL")


async def _fetchval(url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def fetchval(url: str, sql: str, *args: object) -> object:
    return asyncio.run(_fetchval(url, sql, *args))


def login_refused(url: str) -> bool:
    try:
        fetchval(url, "SELECT 1")
    except asyncpg.InvalidPasswordError:
        return True
    return False


def succeeded_fires(database_url: str, namespace: str) -> int:
    return fetchval(database_url, "SELECT count(*) FROM fires WHERE namespace = $1"
                    " AND status = 'succeeded'", namespace)


def test_each_namespace_secret_holds_a_role_of_its_own(k8s_api, tenants, operator):
    core = client.CoreV1Api(k8s_api)
    users = [urlsplit(secret_url(core, namespace)).username for namespace in tenants]

    assert urlsplit(operator.database_url).username not in users
    assert users[0] != users[1]
    assert all(urlsplit(secret_url(core, n)).password for n in tenants)


def test_replicas_run_their_schedules_with_the_namespace_role(k8s_api, tenants, operator):
    a, b = tenants

    for namespace in (a, b):
        eventually(lambda n=namespace: succeeded_fires(operator.database_url, n) >= 3,
                   timeout=60, what=f"scheduled runs in {namespace}")
    backends = fetchval(operator.database_url,
                        "SELECT array_agg(DISTINCT usename) FROM pg_stat_activity"
                        " WHERE datname = current_database()")
    core = client.CoreV1Api(k8s_api)
    assert {urlsplit(secret_url(core, n)).username for n in tenants} <= set(backends or [])


def test_with_b_secret_a_rows_are_invisible(k8s_api, tenants, operator):
    a, b = tenants
    b_url = secret_url(client.CoreV1Api(k8s_api), b)
    eventually(lambda: succeeded_fires(operator.database_url, a) > 0, timeout=60,
               what=f"scheduled runs in {a}")

    for table in ("fires", "runs", "cluster_configs", "cluster_members"):
        assert fetchval(b_url, f"SELECT count(*) FROM {table} WHERE namespace = $1", a) == 0
    assert fetchval(b_url, "SELECT count(*) FROM cluster_configs WHERE namespace = $1", b) == 1
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        fetchval(b_url, "UPDATE cluster_configs SET spec = '{}' WHERE namespace = $1", a)


def test_rotation_asked_on_the_secret_replaces_the_password_and_rolls_the_pods(
        k8s_api, tenants, operator):
    core = client.CoreV1Api(k8s_api)
    _, b = tenants
    old_url = secret_url(core, b)
    old_pods = {p.metadata.name: p.metadata.uid for p in ac.pods_of(core, b, "ticker")}

    asked = uuid.uuid4().hex
    core.patch_namespaced_secret(RUNTIME_SECRET, b, {"metadata": {"annotations": {ROTATE: asked}}})

    new_url = eventually(lambda: (u := secret_url(core, b)) != old_url and u, timeout=60,
                         what="a new DATABASE_URL in the Secret")
    assert urlsplit(new_url).username == urlsplit(old_url).username
    eventually(lambda: fetchval(new_url, "SELECT current_user") == urlsplit(new_url).username,
               timeout=30, what="the new password to work")
    assert login_refused(old_url)

    def rolled() -> bool:
        pods = {p.metadata.name: p for p in ac.pods_of(core, b, "ticker")}
        return set(pods) == set(old_pods) and all(
            p.metadata.uid != old_pods[name] and not p.metadata.deletion_timestamp
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            for name, p in pods.items())

    eventually(rolled, timeout=180, what="every pod of B replaced and Ready")
    eventually(lambda: [e for e in ac.events_of(core, b, "ticker", "CredentialsRotated")
                        if f"{ROTATE}={asked}" in e.message], timeout=30,
               what="a CredentialsRotated event naming the request")
    before = succeeded_fires(operator.database_url, b)
    eventually(lambda: succeeded_fires(operator.database_url, b) > before + 2, timeout=60,
               what="B's schedule running on with the new password")


def test_operator_restart_keeps_the_credentials_and_heals_a_restored_database(
        k8s_api, tenants, operator):
    """The Secret is the source of truth: a restarted operator issues nothing new (no pod
    rolls), and makes PostgreSQL agree with the Secret again, here after the namespace's role
    was lost as in a database restored without it."""
    core = client.CoreV1Api(k8s_api)
    a, _ = tenants
    url = secret_url(core, a)
    pods_before = {p.metadata.name: p.metadata.uid for p in ac.pods_of(core, a, "ticker")}
    # As a restore from a backup without the role does: the role is gone, and so is every
    # session (a restore restarts the server).
    role = urlsplit(url).username
    oid = fetchval(operator.database_url, "SELECT oid FROM pg_roles WHERE rolname = $1", role)
    fetchval(operator.database_url, f'DROP ROLE "{role}"')
    fetchval(operator.database_url, "SELECT count(pg_terminate_backend(pid))"
             " FROM pg_stat_activity WHERE usesysid = $1", oid)
    with pytest.raises(asyncpg.PostgresError):
        fetchval(url, "SELECT 1")

    operator.kill()
    operator.restart()

    eventually(lambda: fetchval(url, "SELECT count(*) FROM cluster_configs") == 1, timeout=60,
               what="the Secret's credentials of A to work again")
    assert secret_url(core, a) == url
    assert {p.metadata.name: p.metadata.uid for p in ac.pods_of(core, a, "ticker")} == pods_before
    before = succeeded_fires(operator.database_url, a)
    eventually(lambda: succeeded_fires(operator.database_url, a) > before + 2, timeout=60,
               what="A's schedule running on")
