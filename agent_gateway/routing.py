"""Which replica gets a chat message or a webhook delivery.

Without a pinned replica: a live, ready replica from the registry, least in flight first
(the replica's own heartbeat count plus what this gateway has sent it and not heard back
from), ties broken round-robin by this gateway (each gateway's own in-flight counts spread
the load of several gateways; a shared counter would cost a Redis round trip per request).
With a pinned replica: exactly that one, or an error that says why not (archived, unknown,
not ready) and lists the live ones. The registry is a hint; the AgentCluster's status is the
truth about who is a member, and the API server about where a replica is.

Redis is not an authority on addresses: whoever can write a replica's hash could point its
`address` anywhere and receive that replica's chats and webhook payloads. Before a replica is
routed to, `PodAuthority` checks that its address is `http://<status.podIP>:<its http port>` of
the pod named for the member (`<cluster>-<replica>`, models.Member.pod), labelled as that
cluster's replica and not being deleted. A replica that fails the check is logged and treated
as not ready.

Nothing here costs a round trip per request (`Registry`, `PodAuthority`): the registry of every
cluster this gateway routes to is mirrored in memory and re-read in the background, and pods
come from a watch of the replica pods (agent_gateway/informer.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import cachetools
import redis.asyncio as aioredis
from kubernetes import client
from redis.exceptions import RedisError

from agent_api import constants, redis_keys
from agent_gateway import errors, informer, kube

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
# The replica endpoints' own credential check is what refuses such a stray request. With the
# pod watch (the HTTP gateway), the window is the watch's latency instead; these two bounds
# apply to the stdio gateway and to namespaces outside the watched ones.
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


def pod_view(pod: dict[str, Any]) -> PodView:
    """What a watched replica pod (the API server's JSON) says, as `view_of` reads a GET's."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    return PodView(
        read_at=0.0, exists=True, labels=tuple(sorted((meta.get("labels") or {}).items())),
        deleting=meta.get("deletionTimestamp") is not None, ip=status.get("podIP") or None,
        ports=tuple(p["containerPort"] for c in spec.get("containers") or [] for p in c.get("ports") or []
                    if p.get("name") == RUNTIME_PORT_NAME),
    )


def pod_informers(api: client.ApiClient, namespaces: tuple[str, ...]) -> informer.Scoped[PodView]:
    """Watches of the replica pods (labelled with their cluster) where the gateway routes."""
    core = client.CoreV1Api(api)

    def make(namespace: str | None) -> informer.Informer[PodView]:
        if namespace is None:
            source = informer.Source("replica pods in all namespaces", core.list_pod_for_all_namespaces,
                                     label_selector=constants.LABEL_CLUSTER)
        else:
            source = informer.Source(f"replica pods in namespace {namespace}",
                                     lambda **kw: core.list_namespaced_pod(namespace, **kw),
                                     label_selector=constants.LABEL_CLUSTER)
        return informer.Informer(source, pod_view)

    return informer.Scoped(make, namespaces)


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
    """Checks a replica's registered address against its pod.

    Cost with the pod watch (`pods`, the HTTP gateway): no request at all; the view is as fresh
    as the watch (a pod's new IP or deletionTimestamp is seen as soon as the API server sends
    it). Without it (stdio, a namespace outside the watched ones): a short cache, one pod GET per
    ready replica per `ttl_seconds` under steady traffic; concurrent requests for a cold pod share
    one GET; an address its pod refuses is re-read at most once per `recheck_seconds`."""

    def __init__(self, k8s: kube.Kube, ttl_seconds: float = POD_TTL_SECONDS,
                 recheck_seconds: float = RECHECK_SECONDS, pods: informer.Scoped[PodView] | None = None) -> None:
        self._kube = k8s
        self._pods = pods
        self._recheck_seconds = recheck_seconds
        self._views: cachetools.TTLCache[tuple[str, str], PodView] = cachetools.TTLCache(
            maxsize=100_000, ttl=ttl_seconds)
        self._reading: dict[tuple[str, str], asyncio.Future[PodView]] = {}
        self._warned: cachetools.TTLCache[tuple[str, ...], bool] = cachetools.TTLCache(
            maxsize=10_000, ttl=WARN_EVERY_SECONDS)

    async def confirms(self, namespace: str, cluster: str, replica: str, address: str) -> bool:
        """Whether `address` is where the API server says the replica's pod is; a refusal is
        logged (once a minute per address and reason; a mismatch as a warning) and answered False."""
        watched = self.confirmed_now(namespace, cluster, replica, address)
        if watched is not None:
            return watched
        key = (namespace, pod_name(cluster, replica))
        view = self._views.get(key)
        if view is None or (refusal(view, cluster, replica, address) is not None
                            and time.monotonic() - view.read_at >= self._recheck_seconds):
            view = await self._read(key)
        return self._judged(view, namespace, cluster, replica, address)

    def confirmed_now(self, namespace: str, cluster: str, replica: str, address: str) -> bool | None:
        """`confirms` answered from the pod watch without waiting, or None when the watch does
        not cover the namespace (yet) and the pod must be read. Routing asks this first: an
        awaited check per replica per request was a task each (`asyncio.gather`)."""
        watched = self._pods.informer(namespace) if self._pods is not None else None
        if watched is None or not watched.synced:
            return None
        view = watched.get(namespace, pod_name(cluster, replica)) or PodView(read_at=0.0)
        return self._judged(view, namespace, cluster, replica, address)

    def _judged(self, view: PodView, namespace: str, cluster: str, replica: str, address: str) -> bool:
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


@dataclasses.dataclass
class Mirrored:
    """One cluster's registry as last read from Redis."""

    entries: dict[str, tuple[Live, float]]
    """Replica name -> (its hash, the monotonic time its key expires in Redis)."""
    used_at: float
    turn: itertools.count[int] = dataclasses.field(default_factory=itertools.count)


# How often the registry of every cluster this gateway routes to is re-read in the background:
# the bound on how stale a routing decision is beyond the heartbeat's own period (a replica
# writes its entry every redis_keys.HEARTBEAT_SECONDS; one that deregisters is gone from here
# within this long; one that stops heartbeating drops out when its key expires in Redis, read
# as its PTTL, even if Redis cannot be reached meanwhile).
REFRESH_SECONDS = 1.0
# A cluster nobody routed to for this long is no longer re-read: an idle gateway reads nothing.
IDLE_SECONDS = 300.0


def decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Registry:
    """The replica registry the runtimes write (agent_api.redis_keys), mirrored in memory for
    the clusters this gateway routes to; a replica whose address its pod does not confirm is
    not ready.

    Cost: the first request for a cluster reads its registry (two pipelined round trips, as
    every request did before); after that, requests read memory, and one background task re-reads
    every cluster in use each REFRESH_SECONDS (two pipelined round trips for all of them)."""

    def __init__(self, redis: aioredis.Redis, authority: PodAuthority,
                 refresh_seconds: float = REFRESH_SECONDS, idle_seconds: float = IDLE_SECONDS) -> None:
        self._redis = redis
        self._authority = authority
        self._refresh_seconds = refresh_seconds
        self._idle_seconds = idle_seconds
        self._outstanding: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._mirror: dict[tuple[str, str], Mirrored] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._refresher: asyncio.Task[None] | None = None

    # --- the mirror ---------------------------------------------------------------------

    async def _read(self, clusters: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, tuple[Live, float]]]:
        """The registry of `clusters` from Redis: the member sets in one pipeline, every
        member's hash and remaining TTL in a second."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for namespace, cluster in clusters:
                pipe.smembers(redis_keys.replicas_set_key(namespace, cluster))
            sets = await pipe.execute()
        names = {key: sorted(decode(n) for n in found) for key, found in zip(clusters, sets, strict=True)}
        wanted = [(key, name) for key in clusters for name in names[key]]
        read: dict[tuple[str, str], dict[str, tuple[Live, float]]] = {key: {} for key in clusters}
        if not wanted:
            return read
        async with self._redis.pipeline(transaction=False) as pipe:
            for (namespace, cluster), name in wanted:
                key = redis_keys.replica_key(namespace, cluster, name)
                pipe.hgetall(key)
                pipe.pttl(key)
            answers = await pipe.execute()
        now = time.monotonic()
        for index, (key, name) in enumerate(wanted):
            fields, ttl_ms = answers[2 * index], answers[2 * index + 1]
            if not fields or ttl_ms == -2:
                continue  # expired: the replica stopped heartbeating
            value = {decode(k): decode(v) for k, v in fields.items()}
            # -1 (no expiry) never comes from a runtime; such an entry lives one full TTL.
            expires = now + (ttl_ms / 1000 if ttl_ms >= 0 else redis_keys.REPLICA_TTL_SECONDS)
            read[key][name] = (Live(name=name, address=value.get("address", ""), ready=value.get("ready") == "1",
                                    in_flight=int(value.get("in_flight") or 0),
                                    ordinal=int(value.get("ordinal") or 0)), expires)
        return read

    async def _mirrored(self, namespace: str, cluster: str) -> Mirrored:
        key = (namespace, cluster)
        found = self._mirror.get(key)
        if found is None:
            loading = self._loading.get(key)
            if loading is None:
                loading = asyncio.ensure_future(self._load(key))
                self._loading[key] = loading
                loading.add_done_callback(lambda _: self._loading.pop(key, None))
            await asyncio.shield(loading)
            found = self._mirror[key]
        found.used_at = time.monotonic()
        self._ensure_refreshing()
        return found

    async def _load(self, key: tuple[str, str]) -> None:
        entries = (await self._read([key]))[key]
        self._mirror[key] = Mirrored(entries=entries, used_at=time.monotonic())

    def _ensure_refreshing(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_forever(), name="registry refresh")

    async def _refresh_forever(self) -> None:
        failing = False
        while self._mirror:
            await asyncio.sleep(self._refresh_seconds)
            now = time.monotonic()
            for key in [k for k, m in self._mirror.items() if now - m.used_at > self._idle_seconds]:
                del self._mirror[key]
            if not self._mirror:
                break
            try:
                read = await self.refresh()
            except (RedisError, OSError) as exc:
                # Entries keep their own expiry: a replica drops out at its TTL regardless.
                if not failing:
                    log.warning("re-reading the replica registry from Redis failed (%s); routing on what was "
                                "read, each entry until its TTL", exc)
                failing = True
                continue
            if failing:
                log.info("re-reading the replica registry from Redis works again (%d clusters)", len(read))
            failing = False

    async def refresh(self) -> dict[tuple[str, str], dict[str, tuple[Live, float]]]:
        """Re-read every mirrored cluster now."""
        clusters = list(self._mirror)
        read = await self._read(clusters)
        for key, entries in read.items():
            if key in self._mirror:
                self._mirror[key].entries = entries
        return read

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)

    # --- routing ------------------------------------------------------------------------

    async def live(self, namespace: str, cluster: str) -> list[Live]:
        mirrored = await self._mirrored(namespace, cluster)
        now = time.monotonic()
        outstanding = self._outstanding
        found = [live if (ours := outstanding.get((namespace, cluster, name), 0)) == 0
                 else dataclasses.replace(live, in_flight=live.in_flight + ours)
                 for name, (live, expires) in sorted(mirrored.entries.items()) if expires > now]
        # Only ready replicas can be routed to, so only theirs are checked: from the pod watch
        # at once where it can answer, the rest concurrently.
        authority = self._authority
        refused = set()
        unknown = []
        for c in found:
            if c.ready:
                ok = authority.confirmed_now(namespace, cluster, c.name, c.address)
                if ok is None:
                    unknown.append(c)
                elif not ok:
                    refused.add(c.name)
        if unknown:
            confirmed = await asyncio.gather(*(authority.confirms(namespace, cluster, c.name, c.address)
                                               for c in unknown))
            refused.update(c.name for c, ok in zip(unknown, confirmed, strict=True) if not ok)
        if not refused:
            return found
        return [dataclasses.replace(c, ready=False) if c.name in refused else c for c in found]

    async def pick(self, namespace: str, cluster: str, members: set[str]) -> Live | None:
        """A ready member by load and round-robin (registry entries of non-members are ignored:
        a replica being archived may still heartbeat for a moment)."""
        candidates = [c for c in await self.live(namespace, cluster) if c.name in members]
        if not any(c.ready for c in candidates):
            return None
        return choose(candidates, next(self._mirror[(namespace, cluster)].turn))

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
