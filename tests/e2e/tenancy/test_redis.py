"""Each namespace's replicas reach Redis as an ACL user of their own: the operator writes it
into the namespace's runtime Secret, the replicas register with it, it cannot touch another
namespace's registry, and a Redis restart (which forgets ACL users) is healed by the operator."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis
from kubernetes import client
from redis.exceptions import NoPermissionError

from agent_api import redis_keys
from devcluster import services
from tests.e2e.helpers import eventually
from tests.e2e.tenancy.conftest import runtime_secret_value

pytestmark = pytest.mark.e2e


def redis_url(core: client.CoreV1Api, namespace: str) -> str:
    return runtime_secret_value(core, namespace, "REDIS_URL")


def registered(admin_url: str, namespace: str, cluster: str) -> dict[str, dict[bytes, bytes]]:
    """The live registry entries of a cluster, read with the operator's own rights."""
    with redis.Redis.from_url(admin_url) as admin:
        names = [n.decode() for n in admin.smembers(redis_keys.replicas_set_key(namespace, cluster))]
        entries = {n: admin.hgetall(redis_keys.replica_key(namespace, cluster, n)) for n in names}
    return {name: entry for name, entry in entries.items() if entry}


def test_each_namespace_secret_holds_a_redis_user_of_its_own(k8s_api, tenants, redis_server):
    core = client.CoreV1Api(k8s_api)
    users = [urlsplit(redis_url(core, namespace)).username for namespace in tenants]

    assert None not in users and "default" not in users
    assert users[0] != users[1]


def test_replicas_register_with_the_namespace_user(tenants, redis_server):
    for namespace in tenants:
        eventually(lambda n=namespace: len(registered(redis_server.url, n, "ticker")) == 2,
                   timeout=60, what=f"both replicas of {namespace} in the registry")


def test_with_b_secret_a_registry_cannot_be_read_or_rewritten(k8s_api, tenants, redis_server):
    a, b = tenants
    replica = eventually(lambda: next(iter(registered(redis_server.url, a, "ticker")), None),
                         timeout=60, what=f"a replica of {a} in the registry")
    a_key = redis_keys.replica_key(a, "ticker", replica)

    with redis.Redis.from_url(redis_url(client.CoreV1Api(k8s_api), b)) as as_b:
        with pytest.raises(NoPermissionError):
            as_b.hgetall(a_key)
        with pytest.raises(NoPermissionError):
            as_b.hset(a_key, "address", "http://10.0.0.66:8080")
        with pytest.raises(NoPermissionError):
            as_b.keys("*")
    with redis.Redis.from_url(redis_server.url) as admin:
        assert admin.hget(a_key, "address") != b"http://10.0.0.66:8080"


def test_users_forgotten_by_a_redis_restart_are_recreated(k8s_api, tenants, redis_server: services.Redis):
    core = client.CoreV1Api(k8s_api)
    _, b = tenants
    user = urlsplit(redis_url(core, b)).username

    redis_server.stop()
    redis_server.start()  # no aclfile, no persistence: every ACL user and key is gone

    def user_exists() -> bool:
        with redis.Redis.from_url(redis_server.url) as admin:
            return admin.acl_getuser(user) is not None

    eventually(user_exists, timeout=60, what=f"the operator to recreate Redis user {user}")
    eventually(lambda: len(registered(redis_server.url, b, "ticker")) == 2, timeout=60,
               what=f"the replicas of {b} to register again with their own user")
