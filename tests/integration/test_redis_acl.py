"""Per-namespace Redis ACL users on a real Redis: namespace B's credentials reach only B's keys,
the runtime's own Registry works with them, and ensuring the user is idempotent and repairs it.

`url_handed_to` is the one place that decides which Redis URL a namespace's replicas get. Before
the per-namespace users it was the operator's own URL for every namespace (`return base_url`);
with that, every isolation test below fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError

from agent_api import redis_keys
from agent_operator import redis_acl
from agent_runtime import config, registry, webhooks

A, B = "team-a", "team"  # B's name is a prefix of A's: its patterns must still not reach A
PASSWORD = {A: "pw-of-a", B: "p@ss:w/rd%?#of b"}  # characters a URL must escape


async def url_handed_to(admin: aioredis.Redis, base_url: str, namespace: str) -> str:
    """The Redis URL a replica of `namespace` is handed."""
    username = await redis_acl.ensure_namespace_user(admin, namespace, PASSWORD[namespace])
    return redis_acl.redis_url_for(base_url, username, PASSWORD[namespace])


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """The operator's connection; the namespace users it made are deleted afterwards (ACL users
    survive FLUSHALL)."""
    client = aioredis.from_url(redis_url)
    await client.acl_log_reset()
    yield client
    for user in await client.acl_users():
        name = user.decode() if isinstance(user, bytes) else user
        if name.startswith(redis_acl.USERNAME_PREFIX):
            await client.acl_deluser(name)
    await client.aclose()


@contextlib.asynccontextmanager
async def connected(url: str, **options: object) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(url, socket_timeout=5, **options)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def tenant_b(admin: aioredis.Redis, redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client with what namespace B's replicas are handed, after A registered a replica."""
    key_a = redis_keys.replica_key(A, "shop", "able-ant")
    await admin.hset(key_a, mapping={"address": "http://10.0.0.5:8080", "ready": "1"})
    await admin.sadd(redis_keys.replicas_set_key(A, "shop"), "able-ant")
    await admin.set(redis_keys.delivery_key(A, "shop", "d-1"), "1", ex=60)
    async with connected(await url_handed_to(admin, redis_url, B)) as client:
        yield client


def identity(namespace: str, url: str, replica: str = "brave-bee") -> config.Identity:
    return config.Identity(namespace=namespace, cluster="shop", replica=replica, ordinal=0, pod_ip="10.0.0.9",
                           database_url="postgresql://unused", redis_url=url)


def setuser_calls(stats: dict) -> int:
    return int((stats.get("cmdstat_acl|setuser") or {}).get("calls", 0))


KEY_A = redis_keys.replica_key(A, "shop", "able-ant")
SET_A = redis_keys.replicas_set_key(A, "shop")
DELIVERY_A = redis_keys.delivery_key(A, "shop", "d-2")

REFUSED: dict[str, Callable[[aioredis.Redis], Awaitable[object]]] = {
    "GET A's registry entry": lambda r: r.get(KEY_A),
    "HGETALL A's registry entry": lambda r: r.hgetall(KEY_A),
    "HSET A's address": lambda r: r.hset(KEY_A, "address", "http://10.9.9.9:8080"),
    "DEL A's registry entry": lambda r: r.delete(KEY_A),
    "EXPIRE A's registry entry": lambda r: r.expire(KEY_A, 1),
    "SMEMBERS A's replica set": lambda r: r.smembers(SET_A),
    "SADD to A's replica set": lambda r: r.sadd(SET_A, "intruder"),
    "SET A's delivery id": lambda r: r.set(DELIVERY_A, "1", nx=True, ex=60),
    "KEYS *": lambda r: r.keys("*"),
    "SCAN": lambda r: r.scan(0),
    "FLUSHALL": lambda r: r.flushall(),
    "FLUSHDB": lambda r: r.flushdb(),
    "CONFIG GET": lambda r: r.config_get("*"),
    "ACL LIST": lambda r: r.acl_list(),
    "EVAL": lambda r: r.eval("return redis.call('GET', KEYS[1])", 1, KEY_A),
    "PUBLISH": lambda r: r.publish("agentclusters", "hello"),
    "HGETALL B's own entry (the runtime never reads)": lambda r: r.hgetall(redis_keys.replica_key(B, "shop", "x")),
}


@pytest.mark.parametrize("attempt", REFUSED.values(), ids=REFUSED.keys())
async def test_namespace_b_is_refused(tenant_b: aioredis.Redis, admin: aioredis.Redis, attempt):
    with pytest.raises(NoPermissionError):
        await attempt(tenant_b)
    assert await admin.hget(KEY_A, "address") == b"http://10.0.0.5:8080"  # A's entry is intact


async def test_namespace_b_cannot_subscribe(tenant_b: aioredis.Redis):
    pubsub = tenant_b.pubsub()
    try:
        with pytest.raises(NoPermissionError):
            await pubsub.subscribe("agentclusters")
            await pubsub.get_message(timeout=2)
    finally:
        await pubsub.aclose()


# Commands whose effect a real test run must not risk (on a wrong ACL, SHUTDOWN would stop the
# session's Redis): ACL DRYRUN asks Redis whether the user could run them, without running them.
NEVER_RUN = [
    ["SHUTDOWN", "NOSAVE"], ["DEBUG", "SLEEP", "0"], ["MIGRATE", "127.0.0.1", "1", KEY_A, "0", "1000"],
    ["MODULE", "LIST"], ["FUNCTION", "FLUSH"], ["SCRIPT", "FLUSH"], ["CONFIG", "SET", "maxmemory", "1"],
    ["REPLICAOF", "127.0.0.1", "1"], ["CLIENT", "KILL", "TYPE", "normal"], ["MONITOR"], ["SAVE"],
    ["ACL", "SETUSER", "x", "on"], ["RENAME", redis_keys.replica_key(B, "c", "r"), KEY_A],
    ["COPY", KEY_A, redis_keys.replica_key(B, "c", "r")],
]


@pytest.mark.parametrize("command", NEVER_RUN, ids=[" ".join(c[:2]) if c[0] not in ("RENAME", "COPY") else c[0]
                                                     for c in NEVER_RUN])
async def test_namespace_b_may_not_run_admin_commands(tenant_b: aioredis.Redis, admin: aioredis.Redis, command):
    user = tenant_b.connection_pool.connection_kwargs.get("username") or "default"
    verdict = await admin.execute_command("ACL DRYRUN", user, *command)
    verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
    assert verdict != "OK" and "no permissions" in verdict, verdict


async def test_the_runtime_registry_works_with_its_namespace_user(admin: aioredis.Redis, redis_url: str):
    me = identity(B, await url_handed_to(admin, redis_url, B))
    reg = registry.Registry(me, "http://10.0.0.9:8080", lambda: (True, 2))
    await reg.heartbeat()
    key = redis_keys.replica_key(B, "shop", "brave-bee")
    entry = await admin.hgetall(key)
    assert entry[b"address"] == b"http://10.0.0.9:8080" and entry[b"ready"] == b"1" and entry[b"in_flight"] == b"2"
    assert 0 < await admin.ttl(key) <= redis_keys.REPLICA_TTL_SECONDS
    assert await admin.smembers(redis_keys.replicas_set_key(B, "shop")) == {b"brave-bee"}
    await reg.deregister()
    assert not await admin.exists(key)
    assert await admin.smembers(redis_keys.replicas_set_key(B, "shop")) == set()
    assert await admin.acl_log() == []  # no command of the runtime or its handshake was refused


async def test_the_runtime_can_record_its_own_webhook_deliveries(admin: aioredis.Redis, redis_url: str):
    """The runtime's real de-duplication (agent_runtime.webhooks.Deliveries): a first delivery
    is new, its replay is noticed with what was recorded first, and nothing is refused."""
    deliveries = webhooks.Deliveries(identity(B, await url_handed_to(admin, redis_url, B)), env={})
    try:
        assert await deliveries.record("d-1") is None
        first_seen = await deliveries.record("d-1")
        await deliveries.forget("d-2")
    finally:
        await deliveries.close()
    assert first_seen is not None and "brave-bee" in first_seen
    assert await admin.ttl(redis_keys.delivery_key(B, "shop", "d-1")) > 0
    assert await admin.acl_log() == []


@pytest.mark.parametrize("options", [{"protocol": 2}, {"protocol": 3}, {"health_check_interval": 0.01}],
                         ids=["RESP2 AUTH", "RESP3 HELLO AUTH", "PING health checks"])
async def test_redis_py_handshakes_are_allowed(admin: aioredis.Redis, redis_url: str, options):
    url = (await url_handed_to(admin, redis_url, B)).rsplit("/", 1)[0] + "/3"  # a database: SELECT
    async with connected(url, **options) as tenant:
        for _ in range(2):
            await tenant.hset(redis_keys.replica_key(B, "c", "r"), "ready", "1")
            await asyncio.sleep(0.05)  # health checks are due
        assert await admin.acl_log() == []


@pytest.mark.parametrize("options", [{"protocol": 2}, {"protocol": 3}, {"decode_responses": True}],
                         ids=["RESP2 admin", "RESP3 admin", "decoding admin"])
async def test_ensuring_twice_writes_once_and_keeps_one_user(admin: aioredis.Redis, redis_url: str, options):
    async with connected(redis_url, **options) as operator:  # GETUSER's reply differs in shape
        first = await redis_acl.ensure_namespace_user(operator, B, PASSWORD[B])
        before = setuser_calls(await admin.info("commandstats"))
        again = await redis_acl.ensure_namespace_user(operator, B, PASSWORD[B])
    assert again == first == redis_acl.username_for(B)
    assert setuser_calls(await admin.info("commandstats")) == before  # no ACL SETUSER
    users = [u.decode() if isinstance(u, bytes) else u for u in await admin.acl_users()]
    assert users.count(first) == 1


async def test_a_user_lost_in_a_redis_restart_is_recreated(admin: aioredis.Redis, redis_url: str):
    url = await url_handed_to(admin, redis_url, B)
    await admin.acl_deluser(redis_acl.username_for(B))  # what a restart without an aclfile does
    assert await url_handed_to(admin, redis_url, B) == url
    async with connected(url) as tenant:
        await tenant.hset(redis_keys.replica_key(B, "c", "r"), "ready", "1")


async def test_a_hand_edited_user_is_put_back(admin: aioredis.Redis, redis_url: str):
    url = await url_handed_to(admin, redis_url, B)
    await admin.execute_command("ACL SETUSER", redis_acl.username_for(B), "~*", "&*", "+@all")
    await url_handed_to(admin, redis_url, B)
    async with connected(url) as tenant:
        with pytest.raises(NoPermissionError):
            await tenant.keys("*")


async def test_a_new_password_replaces_the_old_one(admin: aioredis.Redis, redis_url: str):
    old = await url_handed_to(admin, redis_url, B)
    username = await redis_acl.ensure_namespace_user(admin, B, "rotated")
    async with connected(redis_acl.redis_url_for(redis_url, username, "rotated")) as tenant:
        await tenant.hset(redis_keys.replica_key(B, "c", "r"), "ready", "1")
    async with connected(old) as stale:
        with pytest.raises(AuthenticationError):
            await stale.hset(redis_keys.replica_key(B, "c", "r"), "ready", "1")


async def test_the_password_is_stored_only_as_its_hash(admin: aioredis.Redis):
    await redis_acl.ensure_namespace_user(admin, B, PASSWORD[B])
    listing = " ".join(u.decode() if isinstance(u, bytes) else u for u in await admin.acl_list())
    assert PASSWORD[B] not in listing
    assert f"#{redis_acl.password_hash(PASSWORD[B])}" in listing


async def test_removing_the_user_locks_its_credentials_out(admin: aioredis.Redis, redis_url: str):
    url = await url_handed_to(admin, redis_url, B)
    assert await redis_acl.remove_namespace_user(admin, B) is True
    assert await redis_acl.remove_namespace_user(admin, B) is False
    async with connected(url) as tenant:
        with pytest.raises(AuthenticationError):
            await tenant.hset(redis_keys.replica_key(B, "c", "r"), "ready", "1")
