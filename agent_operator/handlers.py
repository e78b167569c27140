"""kopf wiring, kept thin: events enqueue a key, the work queue calls `reconcile`.

AgentCluster events and pod events (by the cluster label) both enqueue the cluster; a resync
loop enqueues every cluster periodically; nothing else decides anything here. kopf indexes of
AgentClusters, replica pods, PodDisruptionBudgets and namespaces feed the reconcile's reads
(`cache.py`). The admission
handlers call the pure checks in `admission.py`. With leader election (`leadership.py`) the
queue and the resync run only while this replica holds the Lease; admission runs always.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import asyncpg
import kopf
import redis.asyncio as aioredis

from agent_api import constants, secret_refs, tiers
from agent_api.db import cluster_store, migrate
from agent_operator import admission, cache, kube, leadership, metrics, reconcile
from agent_operator.context import Context
from agent_operator.settings import OperatorSettings
from agent_operator.webhook_tls import self_signed
from agent_operator.workqueue import WorkQueue

log = logging.getLogger(__name__)

CLUSTER = (constants.GROUP, constants.VERSION, constants.PLURAL)
REPLICA_POD = ("", "v1", "pods")
BUDGET = ("policy", "v1", "poddisruptionbudgets")
NAMESPACE = ("", "v1", "namespaces")


class Operator:
    """State shared by the handlers of one operator process.

    Every replica serves admission (`self.ctx`, a plain API client). Reconciling (the work
    queue, the resync loop and `self.term`, whose API client refuses writes once the Lease is
    lost) runs only while this replica leads; each term starts with fresh caches, since
    another leader may have changed anything in between."""

    def __init__(self, settings: OperatorSettings, kubeconfig: str | None, namespaces: list[str]) -> None:
        self.settings = settings
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.ctx: Context | None = None
        self.term: Context | None = None
        self.queue: WorkQueue | None = None
        self.metrics = metrics.OperatorMetrics()
        self.resync: asyncio.Task[None] | None = None
        self.elector: leadership.LeaseElector | None = None
        self.election: asyncio.Task[None] | None = None
        # Fed by kopf's watches in every replica, leader or not: a new leader starts warm.
        self.cache = cache.WatchCache()

    def register(self, registry: kopf.OperatorRegistry) -> None:
        on = kopf.on
        # A private registry starts without kopf's default login handlers.
        on.login(registry=registry)(self.login)
        on.startup(registry=registry)(self.startup)
        on.cleanup(registry=registry)(self.cleanup)
        on.event(*CLUSTER, registry=registry)(self.cluster_event)
        replica_pods = {constants.LABEL_CLUSTER: kopf.PRESENT}
        on.event(*REPLICA_POD, labels=replica_pods, registry=registry)(self.pod_event)
        kopf.index(*CLUSTER, id=cache.CLUSTERS, registry=registry)(self.cache.index_cluster)
        kopf.index(*REPLICA_POD, labels=replica_pods, id=cache.PODS, registry=registry)(self.cache.index_pod)
        kopf.index(*BUDGET, id=cache.BUDGETS, registry=registry)(self.cache.index_budget)
        kopf.index(*NAMESPACE, id=cache.NAMESPACES, registry=registry)(self.cache.index_namespace)
        # kopf calls no event handler before every index has its initial listing, and there is
        # always a namespace: its first event says the cache is synced.
        on.event(*NAMESPACE, registry=registry)(self.namespace_event)
        if self.settings.webhook is not None:
            # persistent: kopf leaves these webhooks in the configuration when this process
            # stops, so one replica's shutdown does not switch admission off for the others
            # (and with no operator at all, the API server fails closed: docs/operations.md).
            on.validate(*CLUSTER, operations=["CREATE", "UPDATE"], id="spec", persistent=True,
                        registry=registry)(self.validate_spec)
            on.validate(*CLUSTER, subresource="scale", operations=["UPDATE"], id="scale",
                        persistent=True, registry=registry)(self.validate_scale)

    # --- lifecycle ---------------------------------------------------------------------
    def login(self, **kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod: the service account; elsewhere: $KUBECONFIG (read at call time)."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    async def startup(self, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        self.cache.attach(kwargs)  # kopf's live indexes, passed by their ids
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 120
        settings.watching.client_timeout = 150
        if self.settings.webhook is not None:
            hook = self.settings.webhook
            certfile, keyfile = self_signed(Path(hook.cert_dir or ".agentclusters-webhook"), hook.host)
            settings.admission.server = kopf.WebhookServer(
                addr=hook.listen, port=hook.port, host=hook.host, path="/",
                certfile=str(certfile), pkeyfile=str(keyfile), cafile=str(certfile),
            )
            settings.admission.managed = hook.configuration_name
        pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=4)
        # Before anything is served: replicas never migrate (their roles may not run DDL), they
        # wait for this. Concurrent operators serialise on the migrations' advisory lock.
        async with pool.acquire() as conn:
            applied = await migrate.apply(conn)
        log.info("schema migrations applied: %s", applied or "none pending")
        api_client = kube.load_client(self.kubeconfig)
        self.ctx = Context(kube=kube.Kube(api_client), settings=self.settings, db=pool,
                           redis=aioredis.from_url(self.settings.redis_url, socket_timeout=5,
                                                   socket_connect_timeout=5))
        self.metrics.watch_depth(lambda: self.queue.depth() if self.queue is not None else 0)
        self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        election = self.settings.leader_election
        if not election.enabled:
            log.info("leader election disabled: this process reconciles unconditionally")
            await self._start_leading()
            return
        self.elector = leadership.LeaseElector(
            api_client, leadership.lease_namespace(election.lease_namespace), election.lease_name,
            leadership.identity(),
            leadership.Timing(election.lease_duration_seconds, election.renew_deadline_seconds,
                              election.retry_period_seconds))
        self.election = asyncio.create_task(self.elector.run(self._start_leading, self._stop_leading),
                                            name="leader-election")

    async def _start_leading(self) -> None:
        assert self.ctx is not None
        fence = self.elector.holds_lease if self.elector is not None else (lambda: True)
        fenced = leadership.FencedApiClient(self.ctx.kube.api_client.configuration, fence,
                                            leadership.identity())
        self.term = Context(kube=kube.Kube(fenced, self.cache), settings=self.settings, db=self.ctx.db,
                            redis=self.ctx.redis)
        self.queue = WorkQueue(self.metrics.timed(self._reconcile), self.settings.workers)
        self.metrics.leading(True)
        self.queue.start()
        self.resync = asyncio.create_task(self._resync_forever(), name="resync")

    async def _stop_leading(self) -> None:
        """Cancel every reconcile in flight; events arriving from now on enqueue nothing."""
        queue, resync, term = self.queue, self.resync, self.term
        self.queue, self.resync, self.term = None, None, None
        self.metrics.leading(False)
        # Everything is cancelled before the first await, so even a shutdown that cancels this
        # call leaves no reconcile running (and the fenced client refuses their writes anyway).
        if resync is not None:
            resync.cancel()
        if queue is not None:
            await queue.stop()
        if resync is not None:
            await asyncio.gather(resync, return_exceptions=True)
        if term is not None:
            term.kube.api_client.close()

    async def cleanup(self, **_: Any) -> None:
        if self.election is not None:
            self.election.cancel()
            await asyncio.gather(self.election, return_exceptions=True)
        await self._stop_leading()
        if self.elector is not None:  # after the last write: the next leader starts at once
            await self.elector.release()
        self.metrics.close()
        if self.ctx is not None:
            await self.ctx.db.close()
            await self.ctx.redis.aclose()

    # --- events ------------------------------------------------------------------------
    def cluster_event(self, name: str, namespace: str, **_: Any) -> None:
        self._enqueue(namespace, name)  # on DELETED too: the reconcile archives what is gone

    def pod_event(self, labels: kopf.Labels, namespace: str, **_: Any) -> None:
        self._enqueue(namespace, labels[constants.LABEL_CLUSTER])

    def namespace_event(self, **_: Any) -> None:
        self.cache.synced.set()

    def _enqueue(self, namespace: str, name: str) -> None:
        if self.queue is not None:
            self.queue.add((namespace, name))

    async def _reconcile(self, namespace: str, name: str) -> float | None:
        if self.term is None:  # leadership lost while this key waited
            return None
        return await reconcile.reconcile(self.term, namespace, name)

    async def _resync_forever(self) -> None:
        """Level-based safety net: every cluster is looked at periodically, events or not."""
        assert self.term is not None and self.queue is not None
        ctx, queue = self.term, self.queue
        # The reconcile reads the watch-fed cache: nothing is enqueued before it has its first
        # full listing (a cluster missing from a half-filled cache would look deleted).
        await self.cache.synced.wait()
        # A new leader looks at every cluster at once (it may take over mid scale-up), then
        # every resyncSeconds.
        while True:
            try:
                # Members recorded in PostgreSQL are read first: a cluster created after this
                # read is simply not looked at as "gone" in this round.
                recorded = await cluster_store.clusters_with_live_members(ctx.db)
                listed = set()
                for namespace in self.namespaces or [None]:
                    for obj in await ctx.kube.list_all_clusters(namespace):  # from the cache
                        listed.add((obj["metadata"]["namespace"], obj["metadata"]["name"]))
                watched = {key for key in recorded if not self.namespaces or key[0] in self.namespaces}
                # Listed clusters, and recorded ones whose AgentCluster is gone (deleted while
                # the operator was down): the reconcile re-reads each and archives what is gone.
                for key in listed | watched:
                    queue.add(key)
            except Exception:
                log.exception("resync listing failed; next attempt in %ss", self.settings.resync_seconds)
            await asyncio.sleep(self.settings.resync_seconds)

    # --- admission ---------------------------------------------------------------------
    async def validate_spec(self, body: kopf.Body, old: kopf.Body | None, userinfo: kopf.UserInfo,
                            namespace: str, name: str, **_: Any) -> None:
        assert self.ctx is not None and self.settings.webhook is not None
        tier = await self._tier(namespace)
        spec = dict(body.get("spec") or {})
        old_spec = dict(old.get("spec") or {}) if old is not None else None  # None on CREATE
        if problems := admission.spec_errors(spec, tier, dt.datetime.now(dt.UTC)):
            raise kopf.AdmissionError("; ".join(problems), code=422)
        if message := admission.image_error(spec, old_spec, tier, self.settings.image, namespace):
            raise kopf.AdmissionError(message, code=403)
        await self._check_slots(tier, namespace, name, int(spec.get("replicas", 1)))
        await self._check_secret_access(dict(userinfo), namespace, admission.secret_uses_to_authorize(
            spec, old_spec, userinfo.get("username", ""), self.settings.webhook.secret_reference_check_exempt))

    async def validate_scale(self, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
        tier = await self._tier(namespace)
        await self._check_slots(tier, namespace, name, int((body.get("spec") or {}).get("replicas", 0)))

    async def _tier(self, namespace: str) -> tiers.Tier:
        assert self.ctx is not None
        try:
            return self.settings.tiers.for_namespace(await self.ctx.kube.namespace_labels(namespace))
        except tiers.UnknownTierError as error:
            raise kopf.AdmissionError(str(error), code=422) from error

    async def _check_secret_access(self, user: dict[str, Any], namespace: str,
                                   uses: list[secret_refs.SecretUse]) -> None:
        """The requesting user must be allowed to get every Secret the request newly references."""
        assert self.ctx is not None
        if not uses:
            return
        try:
            denied = await self.ctx.kube.secrets_denied(user, namespace, [use.secret for use in uses])
        except kube.ReviewFailed as error:  # fail closed: an unchecked reference is not admitted
            raise kopf.AdmissionError(f"could not check the Secret references: {error}; try again",
                                      code=503) from error
        if denied:
            raise kopf.AdmissionError(secret_refs.refusal(
                user.get("username", ""), namespace, [use for use in uses if use.secret in denied]), code=403)

    async def _check_slots(self, tier: tiers.Tier, namespace: str, name: str, requested: int) -> None:
        assert self.ctx is not None
        clusters = await self.ctx.kube.list_clusters(namespace)
        if message := admission.quota_error(tier, namespace, name, requested, clusters):
            raise kopf.AdmissionError(message, code=403)
