"""The replica's HTTP server on POD_IP: health, readiness, metrics, run-a-function, chat and
signed webhook deliveries.

Any pod can reach a pod IP, so everything but the kubelet's probes (`/healthz`, `/readyz`)
answers only a caller presenting the cluster's replica token (`Authorization: Bearer
<token>`, compared in constant time; agent_api.replica_auth): the gateway, which has
authenticated and authorized its own caller, or the cluster's own pods.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent_api import replica_auth, secret_env, webhook_signatures
from agent_runtime import config, metrics, runner, webhooks
from agent_runtime.ai import engine, redaction

TRIGGERS = {"webhook", "manual"}
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
RETRY_AFTER_FULL_SECONDS = 5
RETRY_AFTER_UNAVAILABLE_SECONDS = 5
RETRY_AFTER_ROLLOUT_SECONDS = 10
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_token(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Middleware: 401 for every path but the probes unless the request carries `token`."""
    if not token:
        raise ValueError(f"the replica token is empty: set {replica_auth.TOKEN_ENV} (the operator sets it "
                         "from the cluster's Secret)")
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
            return web.json_response(
                {"error": "this replica answers only its cluster's callers: send Authorization: Bearer "
                          f"<token> ({replica_auth.TOKEN_ENV}; the gateway adds it). Agents are reached "
                          "through the gateway"},
                status=401, headers={"WWW-Authenticate": 'Bearer realm="agent-replica"'})
        return await handler(request)

    return middleware


def build_app(identity: config.Identity, counters: metrics.Metrics, run: runner.Runner,
              ready: Callable[[], bool], deliveries: webhooks.Deliveries | None = None) -> web.Application:
    labels = {"namespace": identity.namespace, "cluster": identity.cluster,
              "replica": identity.replica}
    deliveries = deliveries or webhooks.Deliveries(identity)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **labels})

    async def readyz(_request: web.Request) -> web.Response:
        is_ready = ready()
        return web.json_response({"ready": is_ready, **labels}, status=200 if is_ready else 503)

    counters.watch_ready(ready)

    async def metrics_text(_request: web.Request) -> web.Response:
        return web.Response(body=counters.render(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def run_function(request: web.Request) -> web.Response:
        function = request.match_info["function"]
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return _error(400, "the request body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        trigger = body.get("trigger", "manual")
        if trigger not in TRIGGERS:
            return _error(400, f"trigger must be one of {sorted(TRIGGERS)}")
        wait = body.get("wait", True)
        if not isinstance(wait, bool):
            return _error(400, "wait must be true (answer with the result) or false (answer with the run id)")
        try:
            if not wait:
                run_id, _ = await run.start_now(function, trigger, body.get("payload") or {},
                                                body.get("idempotency_key"))
                return _started(run_id)
            run_id, outcome = await run.run_now(function, trigger, body.get("payload") or {},
                                                body.get("idempotency_key"))
        except runner.UnknownFunction:
            return _error(404, f"function {function!r} is not defined in this agent's spec")
        except runner.AtCapacity as full:
            return _full(full)
        return _finished(run_id, outcome)

    async def chat(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "the request body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            return _error(400, "message must be a non-empty string")
        conversation_id = body.get("conversation_id") or str(uuid.uuid4())
        if not isinstance(conversation_id, str) or len(conversation_id) > 256:
            return _error(400, "conversation_id must be a string of at most 256 characters")
        try:
            run_id, result = await run.chat(message, conversation_id)
        except engine.EngineNotConfigured as error:
            return web.json_response({"error": str(error), "replica": identity.replica},
                                     status=503)
        except runner.AtCapacity as full:
            return _full(full)
        answer = {"reply": result.reply, "replica": identity.replica,
                  "conversation_id": conversation_id, "run_id": run_id,
                  "stop_reason": result.stop_reason}
        if result.stop_reason != "completed":
            answer["error"] = redaction.scrub(result.error or result.stop_reason)
            return web.json_response(answer, status=502)
        return web.json_response(answer)

    async def hook(request: web.Request) -> web.Response:
        """A signed delivery, forwarded by the gateway; see agent_runtime/webhooks.py."""
        answer = await deliver(request)
        counters.webhook_delivery(answer.status)
        return answer

    async def deliver(request: web.Request) -> web.Response:
        name = request.match_info["webhook"]
        current = run.current_spec()
        webhook = current.webhooks.get(name) if current else None
        if webhook is None:
            return _error(404, f"no webhook named {name!r} in this agent's spec")
        secret = deliveries.secret(name)
        if secret is None:
            return _error(503, f"webhook {name!r} is newer than this replica: its secret "
                               f"({secret_env.webhook_secret(name)}) is not in the replica's "
                               "environment yet; the operator replaces the replica's pod shortly",
                          RETRY_AFTER_ROLLOUT_SECONDS)
        body = await request.read()
        try:
            signed = webhook_signatures.signed_headers(request.headers)
            webhook_signatures.verify(secret, signed, deliveries.path(webhook.path), body,
                                      now=deliveries.clock(), tolerance_seconds=deliveries.tolerance_seconds)
        except webhook_signatures.Refused as refused:
            return _error(401, str(refused))
        try:  # before the id is recorded, so the sender may send this delivery again
            run.admit(current)
        except runner.AtCapacity as full:
            return _full(full)
        try:
            first_seen = await deliveries.record(signed.delivery)
        except webhooks.Unavailable as unavailable:
            return _error(503, str(unavailable), RETRY_AFTER_UNAVAILABLE_SECONDS)
        if first_seen is not None:
            return _error(409, webhooks.replay_message(signed.delivery, first_seen))
        try:
            run_id, task = await run.start_now(webhook.function, "webhook", webhooks.payload_of(body),
                                               signed.delivery)
        except runner.UnknownFunction:
            await deliveries.forget(signed.delivery)
            return _error(404, f"webhook {name!r} names function {webhook.function!r}, which is not "
                               "defined in this agent's spec")
        except runner.AtCapacity as full:
            await deliveries.forget(signed.delivery)
            return _full(full)
        except BaseException:
            await asyncio.shield(deliveries.forget(signed.delivery))
            raise
        if not webhook.synchronous:
            return _started(run_id)
        # Shielded: a sender that hangs up does not cut the run short.
        return _finished(run_id, await asyncio.shield(task))

    def _started(run_id: int) -> web.Response:
        return web.json_response({"run_id": run_id, "status": "running", "replica": identity.replica},
                                 status=202)

    def _finished(run_id: int, outcome: runner.Outcome) -> web.Response:
        return web.json_response(
            {"run_id": run_id, "status": outcome.status, "error": outcome.error,
             "output": outcome.output, "replica": identity.replica},
            status=200 if outcome.status == "succeeded" else 502,
        )

    async def close_deliveries(_app: web.Application) -> None:
        await deliveries.close()

    app = web.Application(middlewares=[require_token(identity.replica_token)])
    app.add_routes([
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics_text),
        web.post("/run/{function}", run_function),
        web.post("/chat", chat),
        web.post("/hooks/{webhook}", hook),
    ])
    app.on_cleanup.append(close_deliveries)
    return app


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": message}, status=status, headers=headers)


def _full(full: runner.AtCapacity) -> web.Response:
    return _error(429, str(full), RETRY_AFTER_FULL_SECONDS)
