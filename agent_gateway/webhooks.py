"""`POST /hooks/{namespace}/{agent}/{path}`: signed webhooks, spread across live replicas.

The gateway holds no webhook secret: the replica that runs a delivery verifies its signature
(agent_api.webhook_signatures, scheme v1: timestamp, delivery id, path and body) and refuses
replays (agent_runtime/webhooks.py). Here, in order: body size (413), the agent and a webhook
with that path (404; 503 while the gateway's AgentCluster cache has not synced), the
signature headers' shape, which needs no secret (401, so malformed and body-only-signed
deliveries never reach a replica), the webhook's rate limit (429), a ready replica (503),
then `POST /hooks/{webhook-name}` on it with the raw body, the signature headers and the
cluster's replica token. The replica's answer is passed on as it is: 202 with
the run id, or for a `synchronous` webhook the run's result (200, or 502 if the run failed);
its refusals (401 bad signature or stale timestamp, 409 replay, 429 full, 503) with their
messages and `Retry-After`.
"""

from __future__ import annotations

import hashlib

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from agent_api import webhook_signatures
from agent_gateway import deps, errors

FORWARDED = (webhook_signatures.TIMESTAMP_HEADER, webhook_signatures.DELIVERY_HEADER,
             webhook_signatures.SIGNATURE_HEADER, "Content-Type")


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is longer than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _limit_key(namespace: str, agent: str, webhook: str) -> str:
    return "webhook-" + hashlib.sha256(f"{namespace}/{agent}/{webhook}".encode()).hexdigest()[:24]


def handler(d: deps.Deps):
    async def hook(request: Request) -> JSONResponse:
        namespace = request.path_params["namespace"]
        agent = request.path_params["agent"]
        path = "/" + request.path_params["path"]
        limit = d.settings.webhook_max_body_bytes
        body = await read_limited(request, limit)
        if body is None:
            return _error(413, f"the body is larger than {limit} bytes")
        try:
            obj = await d.kube.get(namespace, agent)
        except errors.GatewayError as exc:
            if exc.code == "unavailable":  # the gateway's cache has not synced yet, or the API server failed
                return _error(503, f"the gateway cannot look up agent {agent!r} yet; send the delivery again later",
                              **{"Retry-After": str(exc.retry_after_seconds or errors.RETRY_SECONDS)})
            return _error(404, f"no webhook at {request.url.path}")
        hook_spec = next((w for w in (obj.get("spec") or {}).get("webhooks") or [] if w.get("path") == path), None)
        if hook_spec is None:
            return _error(404, f"no webhook at {request.url.path}")
        try:
            webhook_signatures.signed_headers(request.headers)
        except webhook_signatures.Refused as refused:
            return _error(401, str(refused))
        try:
            per_minute = d.webhook_limiter.per_minute
            if per_minute > 0:
                count, wait = await d.webhook_limiter.hit(_limit_key(namespace, agent, hook_spec["name"]))
                if count > per_minute:
                    return _error(429, f'webhook "{hook_spec["name"]}" received {count} deliveries this minute; the '
                                       f"limit is {per_minute} per minute per webhook; retry in {wait}s",
                                  **{"Retry-After": str(wait)})
            members = {m["name"] for m in (obj.get("status") or {}).get("members") or []}
            target = await d.registry.pick(namespace, agent, members)
        except RedisError as exc:
            return _error(503, f"the gateway cannot reach Redis ({exc}); send the delivery again later",
                          **{"Retry-After": "5"})
        if target is None:
            return _error(503, f'agent "{agent}" has no ready replica yet', **{"Retry-After": "5"})
        forwarded = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        try:
            async with d.registry.dispatching(namespace, agent, target.name):
                status, headers, answer = await d.runtime.deliver(
                    namespace, agent, target.name, target.address, hook_spec["name"], body, forwarded)
        except errors.GatewayError as exc:
            return _error(502, str(exc))
        answer.setdefault("replica", target.name)
        retry_after = {"Retry-After": headers["retry-after"]} if "retry-after" in headers else None
        return JSONResponse(answer, status_code=status, headers=retry_after)

    return hook
