"""`POST /hooks/{namespace}/{agent}/{path}`: signed webhooks, spread across live replicas.

Order of checks: body size (413), the agent and a webhook with that path (404), the signature
with the webhook's Secret (401), a ready replica (503), then the runtime's `POST /run/{function}`
on the chosen replica. The answer is the run id (202) as soon as the run has started, or the
run's result when the webhook is `synchronous` (200, or 502 if the run failed).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from agent_gateway import deps, errors, signatures

DELIVERY_HEADER = "X-Agent-Delivery"


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


def payload_of(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        return {"body": body.decode("utf-8", errors="replace")}
    return value if isinstance(value, dict) else {"body": value}


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


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
        except errors.GatewayError:
            return _error(404, f"no webhook at {request.url.path}")
        hook_spec = next((w for w in (obj.get("spec") or {}).get("webhooks") or [] if w.get("path") == path), None)
        if hook_spec is None:
            return _error(404, f"no webhook at {request.url.path}")
        ref = hook_spec["secretRef"]
        secret = await d.kube.secret_value(namespace, ref["name"], ref["key"])
        if secret is None:
            return _error(503, f'the webhook\'s Secret "{ref["name"]}" (key "{ref["key"]}") is missing')
        if not signatures.verify(secret, body, request.headers.get(signatures.HEADER)):
            return _error(401, f"missing or bad {signatures.HEADER} (expected sha256=<hex HMAC-SHA256 of the body>)")
        members = {m["name"] for m in (obj.get("status") or {}).get("members") or []}
        target = await d.registry.pick(namespace, agent, members)
        if target is None:
            return _error(503, f'agent "{agent}" has no ready replica yet', **{"Retry-After": "5"})
        try:
            async with d.registry.dispatching(namespace, agent, target.name):
                status, answer = await d.runtime.run(target.name, target.address, hook_spec["function"],
                                                     payload_of(body), "webhook",
                                                     request.headers.get(DELIVERY_HEADER),
                                                     wait=bool(hook_spec.get("synchronous")))
        except errors.GatewayError as exc:
            return _error(502, str(exc))
        if status not in (200, 202, 502):
            return _error(502, f'replica "{target.name}" answered HTTP {status}: {answer.get("error") or answer}')
        result = {"run_id": answer.get("run_id"), "replica": answer.get("replica", target.name),
                  "status": answer.get("status")}
        if hook_spec.get("synchronous"):
            result |= {"output": answer.get("output"), "error": answer.get("error")}
            return JSONResponse(result, status_code=200 if answer.get("status") == "succeeded" else 502)
        return JSONResponse(result, status_code=202)

    return hook
