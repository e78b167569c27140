"""The replica's HTTP server on POD_IP: health, readiness, metrics, run-a-function, chat."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from aiohttp import web

from agent_runtime import config, metrics, runner
from agent_runtime.ai import engine, redaction

TRIGGERS = {"webhook", "manual"}


def build_app(identity: config.Identity, counters: metrics.Metrics, run: runner.Runner,
              ready: Callable[[], bool]) -> web.Application:
    labels = {"namespace": identity.namespace, "cluster": identity.cluster,
              "replica": identity.replica}

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **labels})

    async def readyz(_request: web.Request) -> web.Response:
        is_ready = ready()
        return web.json_response({"ready": is_ready, **labels}, status=200 if is_ready else 503)

    async def metrics_text(_request: web.Request) -> web.Response:
        counters.ready = ready()
        return web.Response(text=counters.render(labels), content_type="text/plain",
                            charset="utf-8", headers={"X-Prometheus-Format": "0.0.4"})

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
                return web.json_response({"run_id": run_id, "status": "running", "replica": identity.replica},
                                         status=202)
            run_id, outcome = await run.run_now(function, trigger, body.get("payload") or {},
                                                body.get("idempotency_key"))
        except runner.UnknownFunction:
            return _error(404, f"function {function!r} is not defined in this agent's spec")
        return web.json_response(
            {"run_id": run_id, "status": outcome.status, "error": outcome.error,
             "output": outcome.output, "replica": identity.replica},
            status=200 if outcome.status == "succeeded" else 502,
        )

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
        answer = {"reply": result.reply, "replica": identity.replica,
                  "conversation_id": conversation_id, "run_id": run_id,
                  "stop_reason": result.stop_reason}
        if result.stop_reason != "completed":
            answer["error"] = redaction.scrub(result.error or result.stop_reason)
            return web.json_response(answer, status=502)
        return web.json_response(answer)

    app = web.Application()
    app.add_routes([
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics_text),
        web.post("/run/{function}", run_function),
        web.post("/chat", chat),
    ])
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
