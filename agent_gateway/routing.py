"""Which replica gets a chat message or a webhook delivery.

Without a pinned replica: a live, ready replica from the Redis registry, least in flight first
(the replica's own heartbeat count plus what this gateway has sent it and not heard back
from), ties broken round-robin with a counter in Redis so several gateways share the turn.
With a pinned replica: exactly that one, or an error that says why not (archived, unknown,
not ready) and lists the live ones. The registry is a hint; the AgentCluster's status is the
truth about who is a member, and the API server about where a replica is.

Redis is not an authority on addresses: whoever can write a replica's hash could point its
`address` anywhere and receive that replica's chats and webhook payloads. Before a replica is
routed to, `PodAuthority` checks that its address is `http://<status.podIP>:<its http port>` of
the pod named for the member (`<cluster>-<replica>`, models.Member.pod), labelled as that
cluster's replica and not being deleted. A replica that fails the check is logged and treated
as not ready.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator

import cachetools
import redis.asyncio as aioredis
from kubernetes import client

from agent_api import constants, redis_keys
from agent_gateway import errors, kube

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Live:
    """A replica as the registry shows it."""

    name: str
    address: str
    ready: bool
    in_flight: int
    ordinal: int


def choose(candidates: list[Live], turn: int) -> Live | None:
    """The ready replica with the fewest runs in flight; among equals, the `turn`-th by name."""
    ready = [c for c in candidates if c.ready]
    if not ready:
        return None
    least = min(c.in_flight for c in ready)
    ties = sorted((c for c in ready if c.in_flight == least), key=lambda c: c.name)
    return ties[turn % len(ties)]


def pinned(agent: dict, replica: str, live: list[Live], archived_at: str | None = None) -> Live:
    """The pinned replica if it is a live, ready member; otherwise a GatewayError saying why.
    `archived_at`: when the replica was archived, if the caller found it archived beyond the
    newest few that status keeps."""
    name = agent["metadata"]["name"]
    status = agent.get("status") or {}
    members = {m["name"]: m for m in status.get("members") or []}
    archived = {a["name"]: a.get("archivedAt") for a in status.get("archived") or []}
    if archived_at is not None:
        archived[replica] = archived_at
    listing = ", ".join(sorted(members)) or "none"
    if replica in archived:
        raise errors.GatewayError(
            f'replica "{replica}" of agent "{name}" is archived (removed by scale-down at '
            f'{archived[replica]}): its state and history stay readable, but it no '
            f"longer runs or chats. Live replicas: {listing}", code="conflict")
    if replica not in members:
        raise errors.GatewayError(f'agent "{name}" has no replica named "{replica}". Live replicas: {listing}',
                                  code="not_found")
    found = next((c for c in live if c.name == replica), None)
    if found is None or not found.ready:
        phase = members[replica].get("phase") or "unknown"
        raise errors.GatewayError(
            f'replica "{replica}" of agent "{name}" is not ready yet (pod phase {phase}); try again in a '
            "few seconds, or leave replica out to use any ready one",
            code="unavailable", retry_after_seconds=errors.RETRY_SECONDS)
    return found


def no_ready_replica(agent: dict) -> errors.GatewayError:
    name = agent["metadata"]["name"]
    status = agent.get("status") or {}
    wanted = (agent.get("spec") or {}).get("replicas", 1)
    if wanted == 0:
        return errors.GatewayError(f'agent "{name}" has 0 replicas; scale_agent it to at least 1 first',
                                   code="conflict")
    return errors.GatewayError(
        f'agent "{name}" has no ready replica yet ({status.get("readyReplicas", 0)} of {wanted} ready); '
        "try again in a few seconds", code="unavailable", retry_after_seconds=errors.RETRY_SECONDS)


# The operator's pod layout (agent_operator/pods.py), which the gateway may not import: the
# runtime container serves HTTP on the port it names "http", and the runtime registers
# "http://<POD_IP>:<that port>" (agent_runtime/main.py).
RUNTIME_PORT_NAME = "http"
# How long a pod as read from the API server is trusted. For a pod that is replaced (deleted,
# then recreated under the same name with a new IP): the new replica is routed to as soon as
# it registers its new address, since an address that disagrees with a view older than
# RECHECK_SECONDS is re-read at once. But for up to POD_TTL_SECONDS after the old pod started
# terminating or vanished, a Redis entry still holding the old pod's IP (a runtime that died
# without deregistering leaves it for up to REPLICA_TTL_SECONDS, until the new replica's first
# heartbeat overwrites it) is still routed to that IP, which may by then belong to another pod.
# The replica endpoints' own credential check is what refuses such a stray request; a
# watch-fed cache (a later issue) will shrink the window to the watch's latency.
POD_TTL_SECONDS = 5.0
# An address that disagrees with the pod is re-read at most this often, so a poisoned entry
# cannot turn every request into an API call.
RECHECK_SECONDS = 1.0
# The same refusal is logged once per this many seconds, not once per request.
WARN_EVERY_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class PodView:
    """What the API server said about a replica's pod, and when."""

    read_at: float
    exists: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    deleting: bool = False
    ip: str | None = None
    """status.podIP; None until the pod has one."""
    ports: tuple[int, ...] = ()
    """The pod's container ports named RUNTIME_PORT_NAME (exactly one for a replica pod)."""
    unreadable: str | None = None
    """Why the pod could not be read."""


def view_of(pod: client.V1Pod | None, read_at: float) -> PodView:
    if pod is None:
        return PodView(read_at=read_at)
    containers = pod.spec.containers if pod.spec else []
    return PodView(
        read_at=read_at, exists=True, labels=tuple(sorted((pod.metadata.labels or {}).items())),
        deleting=pod.metadata.deletion_timestamp is not None,
        ip=pod.status.pod_ip if pod.status else None,
        ports=tuple(p.container_port for c in containers for p in c.ports or [] if p.name == RUNTIME_PORT_NAME),
    )


def pod_name(cluster: str, replica: str) -> str:
    """The pod a member runs in (models.Member.pod; agent_operator.membership.pod_name)."""
    return f"{cluster}-{replica}"


def refusal(view: PodView, cluster: str, replica: str, address: str) -> str | None:
    """Why `address` from Redis is not replica `replica` of `cluster`, or None if it is."""
    pod = pod_name(cluster, replica)
    if view.unreadable is not None:
        return f"its pod {pod} could not be read: {view.unreadable}"
    if not view.exists:
        return f"there is no pod {pod}"
    labels = dict(view.labels)
    if labels.get(constants.LABEL_CLUSTER) != cluster or labels.get(constants.LABEL_REPLICA) != replica:
        return f"pod {pod} is not labelled as replica {replica} of agent {cluster}"
    if view.deleting:
        return f"its pod {pod} is being deleted"
    if view.ip is None:
        return f"its pod {pod} has no IP yet"
    if len(view.ports) != 1:
        return f"its pod {pod} does not have exactly one container port named {RUNTIME_PORT_NAME!r}"
    # Exactly what the runtime registers (agent_runtime/main.py): no other form is accepted.
    if address != f"http://{view.ip}:{view.ports[0]}":
        return f"its pod {pod} is at http://{view.ip}:{view.ports[0]}"
    return None


class PodAuthority:
    """Checks a replica's registered address against its pod, with a short cache.

    Cost: nothing per request while the cache is warm; one pod GET per ready replica per
    `ttl_seconds` under steady traffic; concurrent requests for a cold pod share one GET; an
    address its pod refuses is re-read at most once per `recheck_seconds`."""

    def __init__(self, k8s: kube.Kube, ttl_seconds: float = POD_TTL_SECONDS,
                 recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._kube = k8s
        self._recheck_seconds = recheck_seconds
        self._views: cachetools.TTLCache[tuple[str, str], PodView] = cachetools.TTLCache(
            maxsize=100_000, ttl=ttl_seconds)
        self._reading: dict[tuple[str, str], asyncio.Future[PodView]] = {}
        self._warned: cachetools.TTLCache[tuple[str, ...], bool] = cachetools.TTLCache(
            maxsize=10_000, ttl=WARN_EVERY_SECONDS)

    async def confirms(self, namespace: str, cluster: str, replica: str, address: str) -> bool:
        """Whether `address` is where the API server says the replica's pod is; a refusal is
        logged (once a minute per address and reason; a mismatch as a warning) and answered False."""
        key = (namespace, pod_name(cluster, replica))
        view = self._views.get(key)
        if view is None or (refusal(view, cluster, replica, address) is not None
                            and time.monotonic() - view.read_at >= self._recheck_seconds):
            view = await self._read(key)
        problem = refusal(view, cluster, replica, address)
        if problem is None:
            return True
        if (warning := (namespace, cluster, replica, address, problem)) not in self._warned:
            self._warned[warning] = True
            # A live pod with an IP that disagrees with Redis (or a pod the gateway cannot read)
            # is what a rewritten entry looks like; a pod that is gone, going or starting is
            # the everyday lag of a scale-down or a replacement behind the registry.
            suspicious = view.unreadable is not None or (view.exists and not view.deleting and view.ip is not None)
            log.log(logging.WARNING if suspicious else logging.INFO,
                    "not routing to replica %s/%s/%s: Redis gives its address as %s, but %s",
                    namespace, cluster, replica, address, problem)
        return False

    async def _read(self, key: tuple[str, str]) -> PodView:
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._fetch(*key))
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        # Shielded: one caller giving up (a client hung up) does not cancel the others' read.
        return await asyncio.shield(reading)

    async def _fetch(self, namespace: str, pod: str) -> PodView:
        try:
            view = view_of(await self._kube.pod(namespace, pod), time.monotonic())
        except Exception as exc:  # any failure to read leaves the address unconfirmed: refuse
            view = PodView(read_at=time.monotonic(), unreadable=str(exc) or type(exc).__name__)
        self._views[(namespace, pod)] = view
        return view


class Registry:
    """Reads the replica registry the runtimes write (agent_api.redis_keys); a replica whose
    address its pod does not confirm is not ready."""

    def __init__(self, redis: aioredis.Redis, authority: PodAuthority) -> None:
        self._redis = redis
        self._authority = authority
        self._outstanding: collections.Counter[tuple[str, str, str]] = collections.Counter()

    async def live(self, namespace: str, cluster: str) -> list[Live]:
        names = sorted(n.decode() if isinstance(n, bytes) else n
                       for n in await self._redis.smembers(redis_keys.replicas_set_key(namespace, cluster)))
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(redis_keys.replica_key(namespace, cluster, name))
            hashes = await pipe.execute()
        found = []
        for name, fields in zip(names, hashes, strict=True):
            if not fields:
                continue  # expired: the replica stopped heartbeating
            value = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                     for k, v in fields.items()}
            found.append(Live(
                name=name, address=value.get("address", ""), ready=value.get("ready") == "1",
                in_flight=int(value.get("in_flight") or 0) + self._outstanding[(namespace, cluster, name)],
                ordinal=int(value.get("ordinal") or 0),
            ))
        # Only ready replicas can be routed to, so only theirs are checked.
        ready = [c for c in found if c.ready]
        confirmed = await asyncio.gather(*(self._authority.confirms(namespace, cluster, c.name, c.address)
                                           for c in ready))
        refused = {c.name for c, ok in zip(ready, confirmed, strict=True) if not ok}
        return [dataclasses.replace(c, ready=False) if c.name in refused else c for c in found]

    async def pick(self, namespace: str, cluster: str, members: set[str]) -> Live | None:
        """A ready member by load and round-robin (registry entries of non-members are ignored:
        a replica being archived may still heartbeat for a moment)."""
        candidates = [c for c in await self.live(namespace, cluster) if c.name in members]
        if not any(c.ready for c in candidates):
            return None
        turn = await self._redis.incr(f"{redis_keys.PREFIX}:gateway:turn:{namespace}:{cluster}")
        return choose(candidates, int(turn))

    @contextlib.asynccontextmanager
    async def dispatching(self, namespace: str, cluster: str, replica: str) -> AsyncIterator[None]:
        """Counts a request this gateway has in flight to a replica, for the next choice."""
        key = (namespace, cluster, replica)
        self._outstanding[key] += 1
        try:
            yield
        finally:
            self._outstanding[key] -= 1
            if self._outstanding[key] <= 0:
                del self._outstanding[key]
