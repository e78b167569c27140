"""Per-namespace Redis ACL users: a replica's Redis credentials reach only its own namespace.

With the operator's own `REDIS_URL` in every namespace, code running in one tenant's replica
(a python function runs in the replica's process) could read, delete or rewrite any other
tenant's registry entries, and rewriting a replica's `address` sends that tenant's chats and
webhooks to an address of the attacker's choosing. Each namespace instead gets a Redis 7 ACL
user confined to exactly `agent_api.redis_keys.namespace_patterns(namespace)`, with no pub/sub
channels and only the commands the runtime sends (plus the connection handshake).

ACL users live in the server's memory: unless Redis runs with an `aclfile` (and someone runs
`ACL SAVE`), a restarted Redis has forgotten them. So `ensure_namespace_user` is meant to run
on every reconcile of the namespace's credentials: it costs one round trip when nothing changed
(`ACL GETUSER` compared with the desired rules) and writes (`ACL SETUSER`) only on a
difference, which also repairs a user someone edited by hand.

The password reaches Redis only as its SHA-256 (`#<hex>`), never in plaintext: `ACL LIST`,
`ACL GETUSER`, `MONITOR` and the slow log show the hash at most.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from typing import Any

import redis.asyncio as aioredis

from agent_api import models, redis_keys

USERNAME_PREFIX = f"{redis_keys.PREFIX}-ns-"

# What agent_runtime/registry.py sends: the heartbeat and the deregistration are each one
# MULTI/EXEC transaction of HSET+EXPIRE+SADD and DEL+SREM. Webhook delivery de-duplication
# (agent_runtime/webhooks.py) stores `delivery_key` with SET key value NX EX n, GETs what was
# recorded first when that SET finds a replay, and DELs a delivery that did not run. The
# registry is never read by the runtime: the gateway, with its own credentials, reads it.
RUNTIME_COMMANDS = ("hset", "expire", "sadd", "del", "srem", "multi", "exec", "set", "get")

# The connection handshake redis-py sends (redis/asyncio/connection.py, on_connect; seen with
# MONITOR and INFO commandstats): HELLO 3 AUTH user pass over RESP3 (redis-py 8's default) or
# AUTH user pass over RESP2 (redis-py 5's); SELECT when the URL names a database other than 0;
# PING for health checks (`health_check_interval`).
# HELLO and AUTH are exempt from ACLs on Redis 7 (no-auth commands); they are listed so these
# rules state the whole handshake. Every other command, admin or dangerous (KEYS, SCAN,
# FLUSHALL, CONFIG, ACL, EVAL, FUNCTION, MODULE, DEBUG, SHUTDOWN, MIGRATE, CLIENT KILL, ...),
# is refused by `-@all`.
HANDSHAKE_COMMANDS = ("hello", "auth", "select", "ping")

# Also part of redis-py's handshake, but subcommands that not every Redis 7 knows (ACL SETUSER
# refuses rules naming an unknown one): CLIENT SETINFO (Redis 7.2+) and CLIENT
# MAINT_NOTIFICATIONS (servers that announce maintenance). redis-py ignores their errors, but a
# refusal would put a NOPERM entry in `ACL LOG` on every connection, burying real violations;
# so each is granted when the server has it.
OPTIONAL_HANDSHAKE_COMMANDS = ("client|setinfo", "client|maint_notifications")

# Flags a fresh `reset` + `on` user shows in ACL GETUSER; any other (nopass, allkeys,
# allchannels, allcommands, off) means the user drifted from the desired rules.
EXPECTED_FLAGS = frozenset({"on", "sanitize-payload"})


def username_for(namespace: str) -> str:
    """The ACL user of a namespace: deterministic, so a lost user is recreated under the same name."""
    if len(namespace) > 63 or not re.fullmatch(models.DNS_LABEL, namespace):
        raise ValueError(
            f"namespace {namespace!r} is not a Kubernetes namespace name (a DNS label: at most 63 "
            "lowercase letters, digits and '-', starting and ending with a letter or digit)")
    return f"{USERNAME_PREFIX}{namespace}"


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def desired_rules(namespace: str, password: str, optional_commands: tuple[str, ...] = ()) -> list[str]:
    """The ACL SETUSER rules of a namespace's user, starting from `reset` so nothing older survives."""
    if not password:
        raise ValueError(f"the Redis password of namespace {namespace!r} is empty; generate one first")
    commands = (*RUNTIME_COMMANDS, *HANDSHAKE_COMMANDS, *optional_commands)
    return [
        "reset", "on", f"#{password_hash(password)}",
        *(f"~{pattern}" for pattern in redis_keys.namespace_patterns(namespace)),
        # `reset` grants every channel when the server's acl-pubsub-default is allchannels.
        "resetchannels",
        "-@all", *(f"+{command}" for command in commands),
    ]


def _text(value: Any) -> Any:
    """A raw reply with bytes decoded (the admin client may or may not decode responses)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_text(v) for v in value]
    return value


def _fields(reply: Any) -> dict[str, Any] | None:
    """ACL GETUSER's reply as a dict: a map in RESP3, a flat name/value list in RESP2."""
    reply = _text(reply)
    if reply is None:
        return None
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[0::2], reply[1::2], strict=True))


def _tokens(value: Any) -> set[str]:
    """Rules as a set: GETUSER lists them in its own order (subcommands after commands)."""
    if isinstance(value, list):
        return {token for item in value for token in str(item).split()}
    return set(str(value or "").split())


def matches(current: dict[str, Any] | None, rules: list[str]) -> bool:
    """Whether the user as ACL GETUSER shows it already has exactly `rules`."""
    if current is None:
        return False
    passwords = {r[1:] for r in rules if r.startswith("#")}
    keys = {r for r in rules if r.startswith("~")}
    commands = {r for r in rules if r[:1] in "+-"}
    return (set(_text(current.get("flags") or [])) == EXPECTED_FLAGS
            and set(_text(current.get("passwords") or [])) == passwords
            and _tokens(current.get("keys")) == keys
            and not _tokens(current.get("channels"))
            and _tokens(current.get("commands")) == commands
            and not current.get("selectors"))


async def ensure_namespace_user(admin: aioredis.Redis, namespace: str, password: str) -> str:
    """Make the namespace's ACL user exist with exactly its rules; returns the username.

    One round trip when the user is already right; ACL SETUSER (atomic: all rules or none) only
    when it is missing (a Redis restart), edited, or the password changed. `admin` needs ACL
    rights (the operator's own connection)."""
    username = username_for(namespace)
    async with admin.pipeline(transaction=False) as pipe:
        # Raw replies: "ACL" and "COMMAND INFO" have no redis-py response callbacks, whose
        # parsing of GETUSER differs between redis-py versions and of COMMAND INFO fails on
        # an unknown command.
        pipe.execute_command("COMMAND INFO", *OPTIONAL_HANDSHAKE_COMMANDS)
        pipe.execute_command("ACL", "GETUSER", username)
        known, current = await pipe.execute()
    optional = tuple(name for name, info in zip(OPTIONAL_HANDSHAKE_COMMANDS, known, strict=True) if info)
    rules = desired_rules(namespace, password, optional)
    if not matches(_fields(current), rules):
        await admin.execute_command("ACL SETUSER", username, *rules)
    return username


async def remove_namespace_user(admin: aioredis.Redis, namespace: str) -> bool:
    """Delete the namespace's ACL user (Redis closes its connections); False if there was none."""
    return bool(await admin.execute_command("ACL DELUSER", username_for(namespace)))


def redis_url_for(base_url: str, username: str, password: str) -> str:
    """`base_url` (the operator's own) with the namespace user's credentials instead of its own.

    Host, port, database, TLS scheme and options are kept; any credentials the base carries,
    in the userinfo or as `username`/`password` query options, are dropped, so the operator's
    password never reaches a tenant. Both parts are percent-escaped (redis-py unescapes them)."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        scheme = base_url.split(":")[0]  # never the whole URL: it may carry the operator's password
        raise ValueError(f"the Redis URL must start with redis://, rediss:// or unix://, not {scheme!r}")
    if not username or not password:
        raise ValueError("a namespace's Redis URL needs both a username and a password")
    host = parts.netloc.rpartition("@")[2]
    query = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                                    if k not in ("username", "password")])
    userinfo = f"{urllib.parse.quote(username, safe='')}:{urllib.parse.quote(password, safe='')}"
    return urllib.parse.urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, query, ""))
