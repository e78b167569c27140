"""Each namespace's runtime Secret: the credentials its replicas get, and only theirs.

The Secret (`runtimeSecretName`, default `agentclusters-runtime`) is built from parts, one per
service the replicas use: `DATABASE_URL` (the namespace's own PostgreSQL role,
`agent_api.db.tenants`) and `REDIS_URL`. A part says what its keys should hold, given what the
Secret holds now and whether credentials are being renewed, and how to make its service agree
(`sync`). Another service's credentials are one more part in `_parts`.

The Secret is the source of truth for passwords. It is written first; then each service is
made to agree with it, once per Secret resourceVersion per operator process: a restarted
operator re-applies the same password (nothing rotates, nothing rolls), and a database
restored from a backup gets its roles and passwords back.

New credentials are issued (rotation) when the Secret is missing, when its URL names another
role (the shared URL of older versions, an edit), when its password is missing or weak, when a
user asks (annotation `agentclusters.io/rotate-credentials`, any new value), or when they are
older than `credentialRotationDays`. The Secret is written first, then PostgreSQL: replicas
keep their open connections, and the pods roll one at a time (the Secret's credentials version
is part of their template hash) so that each new pod starts with the new password.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.exceptions import RedisError

from agent_api import constants
from agent_api.db import tenants
from agent_operator import redis_acl
from agent_operator.context import Context

log = logging.getLogger(__name__)

Obj = dict[str, Any]

DATABASE_URL = "DATABASE_URL"
REDIS_URL = "REDIS_URL"


@dataclass
class Part:
    """One service's keys in the Secret."""

    data: dict[str, str]
    """What the keys should hold."""
    sync: Callable[[], Awaitable[None]]
    """Makes the service accept exactly `data` (idempotent)."""
    renewed: str | None = None
    """Why this part issued new credentials although no rotation was asked for."""
    every_check: bool = False
    """Sync at every check, not once per Secret resourceVersion: the service can forget
    (Redis keeps ACL users in memory; a restart without an aclfile loses them)."""


@dataclass(frozen=True)
class RuntimeSecret:
    """The runtime Secret as read (decoded), or its absence."""

    exists: bool
    data: dict[str, str]
    annotations: dict[str, str]
    resource_version: str | None

    @classmethod
    def of(cls, obj: Obj | None) -> RuntimeSecret:
        if obj is None:
            return cls(False, {}, {}, None)
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        meta = obj["metadata"]
        return cls(True, data, dict(meta.get("annotations") or {}), meta["resourceVersion"])


async def ensure(ctx: Context, obj: Obj) -> str:
    """Keep the namespace's runtime Secret right; return its credentials version (for the pod
    template hash). Checked at most once per resync interval per namespace; an event on `obj`
    says when new credentials were issued."""
    namespace = obj["metadata"]["namespace"]
    now = time.monotonic()
    checked = ctx.secrets_checked.get(namespace, -math.inf)
    if now - checked < ctx.settings.resync_seconds and namespace in ctx.credentials_versions:
        return ctx.credentials_versions[namespace]
    # Two clusters of one namespace reconciled at once must not both issue credentials.
    async with ctx.namespace_locks[namespace]:
        secret = RuntimeSecret.of(await ctx.kube.read_secret(namespace, ctx.settings.runtime_secret_name))
        asked = rotation_reason(secret, ctx.settings.credential_rotation_days, _wall_clock())
        parts = await _parts(ctx, namespace, secret, rotate=asked is not None)
        why = asked or next((p.renewed for p in parts if p.renewed), None)
        want = {key: value for part in parts for key, value in part.data.items()}
        version = secret.annotations.get(constants.ANNOTATION_CREDENTIALS_VERSION, "")
        annotations: dict[str, str] = {}
        if any(secret.data.get(key) != value for key, value in want.items()) or not version:
            version = secrets.token_hex(8)
            annotations[constants.ANNOTATION_CREDENTIALS_VERSION] = version
        if why is not None:
            annotations[constants.ANNOTATION_CREDENTIALS_ROTATED_AT] = _rfc3339(_wall_clock())
            annotations[constants.ANNOTATION_CREDENTIALS_ROTATED_FOR] = secret.annotations.get(
                constants.ANNOTATION_ROTATE_CREDENTIALS, "")
        resource_version = secret.resource_version
        if annotations:
            # Secret first: if the operator stops right after, the next reconcile makes
            # PostgreSQL agree with what the replicas will read.
            written = await ctx.kube.write_secret(namespace, ctx.settings.runtime_secret_name,
                                                  want, annotations, secret.resource_version)
            resource_version = written["metadata"]["resourceVersion"]
        if ctx.credentials_synced.get(namespace) != resource_version:
            try:
                for part in parts:
                    await part.sync()
            except tenants.TenantRoleError as error:
                # Someone gave the namespace's role more than a tenant may have. The operator
                # may not take SUPERUSER, BYPASSRLS or REPLICATION away itself (only a superuser
                # may): it says on the AgentCluster how to fix it, does not set the password,
                # and looks again with the reconcile's back-off.
                await ctx.kube.create_event(obj, "Warning", constants.EVENT_CREDENTIALS_REFUSED,
                                            str(error))
                raise
            ctx.credentials_synced[namespace] = resource_version
        elif not await _sync_forgetful(parts, namespace):
            # Not marked checked: the next reconcile of the namespace tries again.
            ctx.credentials_versions[namespace] = version
            return version
        if why is not None:
            await ctx.kube.create_event(
                obj, "Normal", constants.EVENT_CREDENTIALS_ROTATED,
                f"issued new database and Redis credentials for namespace {namespace} ({why}); "
                "its replicas restart one at a time to pick them up")
        ctx.credentials_versions[namespace] = version
        ctx.secrets_checked[namespace] = now
    return version


async def _parts(ctx: Context, namespace: str, secret: RuntimeSecret, rotate: bool) -> list[Part]:
    return [await _database(ctx, namespace, secret, rotate), _redis(ctx, namespace, secret, rotate)]


async def _sync_forgetful(parts: list[Part], namespace: str) -> bool:
    """Re-sync the parts whose service may have forgotten; False if one could not be reached."""
    for part in parts:
        if part.every_check:
            try:
                await part.sync()
            except (RedisError, OSError) as error:
                log.warning("could not check the Redis user of namespace %s, will retry: %r",
                            namespace, error)
                return False
    return True


async def _database(ctx: Context, namespace: str, secret: RuntimeSecret, rotate: bool) -> Part:
    """The namespace's own PostgreSQL role, at the address replicas use."""
    async with ctx.db.acquire() as conn:
        role = await tenants.role_for(conn, namespace)
    user, password = tenants.url_credentials(secret.data.get(DATABASE_URL, ""))
    renewed = None
    if secret.exists and not rotate:
        if user != role:
            renewed = f"the Secret named PostgreSQL role {user or '(none)'}, not {role}"
        elif not tenants.password_acceptable(password):
            renewed = "the Secret's password was missing or shorter than " \
                      f"{tenants.MIN_PASSWORD_LENGTH} printable ASCII characters"
    if rotate or renewed or password is None:
        password = tenants.new_password()
    base = ctx.settings.runtime_database_url or ctx.settings.database_url
    issued = password

    async def sync() -> None:
        async with ctx.db.acquire() as conn:
            await tenants.ensure_role(conn, namespace, issued)

    return Part({DATABASE_URL: tenants.tenant_url(base, role, password)}, sync, renewed)


def _redis(ctx: Context, namespace: str, secret: RuntimeSecret, rotate: bool) -> Part:
    """The namespace's own Redis ACL user, confined to its keys and the runtime's commands."""
    username = redis_acl.username_for(namespace)
    have = urlsplit(secret.data.get(REDIS_URL, ""))
    password = unquote(have.password) if have.password is not None else None
    renewed = None
    if secret.exists and not rotate:
        if unquote(have.username or "") != username:
            renewed = f"the Secret named Redis user {have.username or '(none)'}, not {username}"
        elif not tenants.password_acceptable(password):
            renewed = "the Secret's Redis password was missing or too short"
    if rotate or renewed or password is None:
        password = tenants.new_password()
    issued = password

    async def sync() -> None:
        await redis_acl.ensure_namespace_user(ctx.redis, namespace, issued)

    return Part({REDIS_URL: redis_acl.redis_url_for(ctx.settings.redis_url, username, password)},
                sync, renewed, every_check=True)


def rotation_reason(secret: RuntimeSecret, rotation_days: float, now: dt.datetime) -> str | None:
    """Why every part must issue new credentials now, or None."""
    if not secret.exists:
        return "the runtime Secret did not exist"
    asked = secret.annotations.get(constants.ANNOTATION_ROTATE_CREDENTIALS)
    if asked and asked != secret.annotations.get(constants.ANNOTATION_CREDENTIALS_ROTATED_FOR):
        return f"asked for with {constants.ANNOTATION_ROTATE_CREDENTIALS}={asked}"
    if rotation_days > 0:
        issued = _parse_rfc3339(secret.annotations.get(constants.ANNOTATION_CREDENTIALS_ROTATED_AT))
        if issued is None or now - issued >= dt.timedelta(days=rotation_days):
            return f"older than credentialRotationDays ({rotation_days:g})"
    return None


def _wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str | None) -> dt.datetime | None:
    """A timestamp this module wrote; None for anything else (treated as unknown age)."""
    try:
        return dt.datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
