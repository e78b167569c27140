"""Refusals a person can act on, as MCP tool errors.

Every failure a tool anticipates is a `GatewayError` (an MCP `ToolError`): the client sees its
message and nothing else. API-server refusals (the operator's admission webhook on quota or
cron, CEL rules) are passed on in the API server's own words.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException
from mcp.server.mcpserver.exceptions import ToolError


class GatewayError(ToolError):
    """A refusal with a message meant for the caller."""


class Conflict(Exception):
    """The object changed since it was read (409): re-read and try again."""


def api_message(exc: ApiException) -> str:
    """The API server's own message from an error response (a Status object)."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{exc.status} {exc.reason}".strip()


def unknown_agent(namespace: str, name: str, known: list[str] | None = None) -> GatewayError:
    listing = f"; agents there: {', '.join(known)}" if known else "; there are no agents there"
    if known is None:
        listing = ""
    return GatewayError(f'no agent named "{name}" in namespace "{namespace}"{listing}')
