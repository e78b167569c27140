"""Refusals a person can act on, as MCP tool errors, each with a code a program can act on.

Every failure a tool anticipates is a `GatewayError` (an MCP `ToolError`) with a message for
the person and one of `CODES` for the program: the server (`server.GatewayServer`) answers it
as an error result whose text is the message and whose structured content is
`{"code": ..., "message": ..., "retry_after_seconds": ...}`. API-server refusals (the
operator's admission webhook on quota or cron, CEL rules) are passed on in the API server's
own words, with the code their HTTP status means (`from_api`).
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

from kubernetes.client.exceptions import ApiException
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

Code = Literal["not_found", "forbidden", "conflict", "invalid", "rate_limited", "unavailable", "internal"]
"""not_found: the agent, replica, function, run or item named does not exist.
forbidden: Kubernetes RBAC (or a quota) does not allow it for this caller.
conflict: the object is in a state that refuses it (exists already, archived, in use, kept changing).
invalid: the arguments are wrong; the message says which and how.
rate_limited: the caller is over its rate limit; retry after `retry_after_seconds`.
unavailable: nothing can serve it right now (no ready replica, a replica busy, unreachable or
  slow, the API server failing); retrying later may succeed.
internal: the gateway failed in a way it did not anticipate (its log has the details)."""
CODES: tuple[str, ...] = get_args(Code)
RETRY_SECONDS = 5
"""What `unavailable` suggests waiting when nothing better is known: a replica starts or frees
up within seconds."""


class GatewayError(ToolError):
    """A refusal with a message meant for the caller and a machine-readable code."""

    def __init__(self, message: str, *, code: Code, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        self.code: Code = code
        self.retry_after_seconds = retry_after_seconds


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


def api_code(status: int | None) -> Code:
    """What an API server's HTTP status means for the caller. An admission webhook's denial
    (quota, cron) comes as 403 unless the webhook names another status."""
    if status == 404:
        return "not_found"
    if status in (401, 403):
        return "forbidden"
    if status in (409, 410):
        return "conflict"
    if status in (400, 422):
        return "invalid"
    if status == 429:
        return "rate_limited"
    return "unavailable"  # 5xx, or no answer at all


def from_api(exc: ApiException, message: str | None = None) -> GatewayError:
    """An API server refusal in its own words (or `message`), coded by its status."""
    return GatewayError(message or api_message(exc), code=api_code(exc.status))


def unknown_agent(namespace: str, name: str, known: list[str] | None = None) -> GatewayError:
    listing = f"; agents there: {', '.join(known)}" if known else "; there are no agents there"
    if known is None:
        listing = ""
    return GatewayError(f'no agent named "{name}" in namespace "{namespace}"{listing}', code="not_found")


def outcome(result: Any) -> str:
    """How a tool call ended, for the audit line and the metrics: `ok`, or the code of the tool
    error it was answered with (`GatewayServer.call_tool` answers every failure with one)."""
    if isinstance(result, CallToolResult) and result.is_error:
        code = (result.structured_content or {}).get("code")
        return code if code in CODES else "internal"
    return "ok"
