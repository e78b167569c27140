"""Everything the tools and the webhook endpoint need, opened once per gateway process."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from agent_gateway import auth, informer, kube, metrics, ratelimit, routing, runtime_client, settings, store

log = logging.getLogger(__name__)


@dataclass
class Deps:
    settings: settings.Settings
    kube: kube.Kube
    store: store.Store
    registry: routing.Registry
    runtime: runtime_client.RuntimeClient
    authorizer: auth.Authorizer
    limiter: ratelimit.RateLimiter
    token_verifier: auth.KubeTokenVerifier
    webhook_limiter: ratelimit.RateLimiter
    metrics: metrics.GatewayMetrics
    local_caller: auth.Caller | None = None
    """Over stdio: the kubeconfig's identity, whom the tools act for. None over HTTP, where
    every call must carry a caller's token."""
    caches: informer.Informers | None = None
    """The watches behind the AgentCluster and pod caches (over HTTP); readiness waits on them."""


@contextlib.asynccontextmanager
async def open_deps(config: settings.Settings) -> AsyncIterator[Deps]:
    api = kube.api_client(config.kubeconfig)
    # Over HTTP the gateway is a service on the hot path: AgentClusters and replica pods come
    # from watches. Over stdio it is one person's process, whose kubeconfig user may not be
    # allowed to list cluster-wide: it reads per request, as before.
    clusters = None if config.stdio else kube.agentcluster_informers(api, config.watch_namespaces)
    pods = None if config.stdio else routing.pod_informers(api, config.watch_namespaces)
    caches = None if clusters is None or pods is None else informer.Informers([*clusters.informers, *pods.informers])
    if caches is not None:
        caches.start()
    k8s = kube.Kube(api, clusters)
    redis = aioredis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=5)
    db = await store.Store.connect(config.database_url)
    tokens: runtime_client.ReplicaTokens = (
        runtime_client.SecretTokens(k8s) if config.stdio else runtime_client.DerivedTokens(config.replica_auth_key))
    runtime = runtime_client.RuntimeClient(config.runtime_timeout_seconds, tokens)
    gateway_metrics = metrics.GatewayMetrics()
    registry = routing.Registry(redis, routing.PodAuthority(k8s, pods=pods))
    limiter = ratelimit.RateLimiter(redis, config.rate_limit_per_minute)
    webhook_limiter = ratelimit.RateLimiter(redis, config.webhook_rate_limit_per_minute)
    try:
        if not config.stdio:  # over stdio the gateway is one person's process, not a service to scrape
            gateway_metrics.serve(config.metrics_host or config.host, config.metrics_port)
        local_caller = await _local_caller(k8s) if config.stdio else None
        yield Deps(
            settings=config, kube=k8s, store=db, runtime=runtime,
            registry=registry,
            authorizer=auth.Authorizer(k8s, config.auth_cache_seconds),
            limiter=limiter,
            token_verifier=auth.KubeTokenVerifier(k8s, config.auth_cache_seconds, config.token_audience),
            webhook_limiter=webhook_limiter,
            metrics=gateway_metrics,
            local_caller=local_caller,
            caches=caches,
        )
    finally:
        if caches is not None:
            caches.stop()
        await registry.close()
        await limiter.close()
        await webhook_limiter.close()
        gateway_metrics.close()
        await runtime.close()
        await db.close()
        await redis.aclose()
        api.close()


async def _local_caller(k8s: kube.Kube) -> auth.Caller:
    """Over stdio: the kubeconfig's user by name, so two local users' rate limits and default
    conversations stay apart."""
    username = await k8s.whoami()
    if username is None:
        log.warning("the API server did not say who the kubeconfig's user is (SelfSubjectReview); "
                    "rate limits and default conversations are shared by every local user")
        return auth.LOCAL
    return auth.Caller(username=username, local=True)
