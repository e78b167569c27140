"""`build_server(deps)`: the MCP server with every tool, the webhook endpoint and a health check.

Over HTTP, the SDK's bearer middleware checks each request's token with TokenReview for the
gateway's audience (`auth.KubeTokenVerifier`; none, a bad one or one minted for another
audience -> 401) before a tool runs, and a tool never runs without a caller. Over stdio there
is no token: the tools act for the kubeconfig's own identity.
"""

from __future__ import annotations

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse

from agent_gateway import deps, webhooks
from agent_gateway.tools import agents, chat, config, runs, schedules, state

INSTRUCTIONS = (
    "Agent Clusters: every agent is a Kubernetes AgentCluster, a cluster of named replicas. "
    "make_agent creates one with 1 replica; scale_agent changes the count and answers with the "
    "replica names; chat_with_agent answers with the replica that replied (pin it to continue a "
    "conversation with the replica that remembers). Schedules run in single mode (one replica per "
    "fire) or cluster mode (every replica). Permissions are Kubernetes RBAC on agentclusters."
)


def build_server(d: deps.Deps) -> MCPServer:
    """The MCP server for `d.settings`: over HTTP (the default) every tool call needs a
    caller's bearer token; with `stdio` the tools act as the kubeconfig's own identity."""
    http = not d.settings.stdio
    auth = None
    if http:
        auth = AuthSettings(issuer_url=d.kube.api.configuration.host, resource_server_url=d.settings.mcp_url,
                            validate_token_resource=False)
    server = MCPServer("agentclusters", instructions=INSTRUCTIONS, auth=auth,
                       token_verifier=d.token_verifier if http else None)
    for module in (agents, schedules, chat, state, runs, config):
        module.register(server, d)
    server.custom_route("/hooks/{namespace}/{agent}/{path:path}", methods=["POST"])(webhooks.handler(d))

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return server
