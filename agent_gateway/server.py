"""`build_server(deps)`: the MCP server with every tool, the webhook endpoint and a health check.

Over HTTP, the SDK's bearer middleware checks each request's token with TokenReview for the
gateway's audience (`auth.KubeTokenVerifier`; none, a bad one or one minted for another
audience -> 401) before a tool runs, and a tool never runs without a caller. Over stdio there
is no token: the tools act for the kubeconfig's own identity.

A failed tool call answers as MCP says (`isError: true`, the sentence as text) and, beside
it, structured content with a machine-readable code (`errors.CODES`), so a program can tell
"no such run" from "not allowed" from "try again in 5 s" without parsing English.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from agent_gateway import audit, deps, errors, metrics, webhooks
from agent_gateway.tools import agents, chat, config, runs, schedules, state

INSTRUCTIONS = (
    "Agent Clusters: every agent is a Kubernetes AgentCluster, a cluster of named replicas. "
    "make_agent creates one with 1 replica; scale_agent changes the count and answers with the "
    "replica names; chat_with_agent answers with the replica that replied (pin it to continue a "
    "conversation with the replica that remembers). Schedules run in single mode (one replica per "
    "fire) or cluster mode (every replica). Permissions are Kubernetes RBAC on agentclusters."
)


log = logging.getLogger(__name__)


class GatewayServer(MCPServer):
    """The SDK's server, answering a failed tool call with its code in structured content.

    `call_tool` is where the SDK turns what a tool raised into a `ToolError` (the tool's own,
    an argument that fails the input schema, an unknown tool) or an `UnexpectedToolError` (a
    crash); answering here keeps that one place, for every tool, instead of a wrapper per tool.
    Every call also writes one audit line (`audit.audited`), the log's only word on refusals:
    their text may quote the caller's arguments."""

    gateway_metrics: metrics.GatewayMetrics
    audit_scope: audit.Scope

    @audit.audited
    @metrics.observed
    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context[Any, Any] | None = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            # The crash's own text stays in the log; the caller gets the SDK's generic sentence.
            log.exception("tool %r raised an unexpected exception", name)
            return failed(f"Error executing tool {name}", "internal", None)
        except ToolError as exc:
            refusal = coded(exc)
            if refusal is None:
                unknown = str(exc).startswith("Unknown tool:")
                return failed(str(exc), "not_found" if unknown else "invalid", None, str(exc))
            return failed(str(exc), refusal.code, refusal.retry_after_seconds, str(refusal))


def coded(exc: BaseException) -> errors.GatewayError | None:
    """The GatewayError behind a ToolError (the SDK wraps the tool's own in its own), or None
    when the SDK refused by itself (arguments that fail the schema, an unknown tool)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, errors.GatewayError):
            return seen
        if isinstance(seen, ValidationError):
            return None
        seen = seen.__cause__
    return None


def failed(text: str, code: errors.Code, retry_after_seconds: int | None, message: str | None = None) -> CallToolResult:
    structured: dict[str, Any] = {"code": code, "message": message or text}
    if retry_after_seconds is not None:
        structured["retry_after_seconds"] = retry_after_seconds
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured,
                          is_error=True)


def build_server(d: deps.Deps) -> MCPServer:
    """The MCP server for `d.settings`: over HTTP (the default) every tool call needs a
    caller's bearer token; with `stdio` the tools act as the kubeconfig's own identity."""
    http = not d.settings.stdio
    auth = None
    if http:
        auth = AuthSettings(issuer_url=d.kube.api.configuration.host, resource_server_url=d.settings.mcp_url,
                            validate_token_resource=False)
    server = GatewayServer("agentclusters", instructions=INSTRUCTIONS, auth=auth,
                           token_verifier=d.token_verifier if http else None)
    server.gateway_metrics = d.metrics
    server.audit_scope = audit.Scope(d.settings.default_namespace, d.local_caller)
    for module in (agents, schedules, chat, state, runs, config):
        module.register(server, d)
    server.custom_route("/hooks/{namespace}/{agent}/{path:path}", methods=["POST"])(
        metrics.counted_deliveries(webhooks.handler(d), d.metrics))

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_request: Request) -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    @server.custom_route("/readyz", methods=["GET"])
    async def readyz(_request: Request) -> JSONResponse:
        """Readiness: the AgentCluster and pod caches have synced (a gateway that answered from
        an empty cache would call every agent unknown)."""
        waiting = d.caches.not_synced() if d.caches is not None else []
        if waiting:
            return JSONResponse({"status": "waiting for the API server", "not_synced": waiting}, status_code=503)
        return JSONResponse({"status": "ok"})

    return server
