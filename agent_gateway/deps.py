"""Everything the tools and the webhook endpoint need, opened once per gateway process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from agent_gateway import auth, kube, ratelimit, routing, runtime_client, settings, store


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


@contextlib.asynccontextmanager
async def open_deps(config: settings.Settings) -> AsyncIterator[Deps]:
    api = kube.api_client(config.kubeconfig)
    k8s = kube.Kube(api)
    redis = aioredis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=5)
    db = await store.Store.connect(config.database_url)
    runtime = runtime_client.RuntimeClient(config.runtime_timeout_seconds)
    try:
        yield Deps(
            settings=config, kube=k8s, store=db, runtime=runtime,
            registry=routing.Registry(redis, routing.PodAuthority(k8s)),
            authorizer=auth.Authorizer(k8s, config.auth_cache_seconds),
            limiter=ratelimit.RateLimiter(redis, config.rate_limit_per_minute),
            token_verifier=auth.KubeTokenVerifier(k8s, config.auth_cache_seconds),
        )
    finally:
        await runtime.close()
        await db.close()
        await redis.aclose()
        api.close()
