"""One audit line per tool call: who called which tool on which agent, how it ended, how long
it took — never what the arguments said.

A platform team answers "who scaled the scraper down at 3 am" from these lines (logger
`agent_gateway.audit`, message `tool call`, fields `caller`, `tool`, `namespace`, `agent`,
`outcome`, `duration_seconds`). Arguments carry state values, chat messages, prompts and
payloads, so only the two that name the target are written, and only when they are valid
Kubernetes names (anything else could be content put in the wrong field): the namespace (the
gateway's default when the call names none) and the agent (`name` or `agent_name`).
`outcome` is `ok` or the error code the caller got (`errors.CODES`; `cancelled` when the
client went away mid-call).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from agent_gateway import auth, errors

log = logging.getLogger(__name__)

MESSAGE = "tool call"
AGENT_ARGUMENTS = ("name", "agent_name")
# A Kubernetes name (DNS-1123 label) or the SDK's tool names: what may be written as is.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TOOL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Scope:
    """What an audit line needs beyond the call: the namespace a call that names none acts
    in, and over stdio the kubeconfig's identity (there is no token to name the caller)."""

    default_namespace: str
    local_caller: auth.Caller | None


def audited(call_tool: Callable[Concatenate[Any, str, Mapping[str, Any], P], Awaitable[R]]
            ) -> Callable[Concatenate[Any, str, Mapping[str, Any], P], Awaitable[R]]:
    """Wraps `MCPServer.call_tool` (of a server with an `audit_scope`) to write the line
    once the call has ended, whatever way it ended."""

    @functools.wraps(call_tool)
    async def wrapper(self: Any, name: str, arguments: Mapping[str, Any], *args: P.args, **kwargs: P.kwargs) -> R:
        started = time.monotonic()
        outcome = "internal"  # an exception escaping the SDK's own handling
        try:
            result = await call_tool(self, name, arguments, *args, **kwargs)
            outcome = errors.outcome(result)
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            write(self.audit_scope, name, arguments, outcome, time.monotonic() - started)

    return wrapper



def write(scope: Scope, tool: str, arguments: Mapping[str, Any], outcome: str, seconds: float) -> None:
    namespace = arguments.get("namespace") or scope.default_namespace
    agent = next((arguments[key] for key in AGENT_ARGUMENTS if key in arguments), None)
    log.info(MESSAGE, extra={
        "caller": caller_name(scope.local_caller),
        "tool": tool if _TOOL.match(tool) else "(not a tool name)",
        "namespace": _name(namespace),
        "agent": _name(agent),
        "outcome": outcome,
        "duration_seconds": round(seconds, 4),
    })


def caller_name(local: auth.Caller | None) -> str | None:
    """The TokenReview's user of this call's token (over stdio, the kubeconfig's); None when
    a call came without one (it was refused)."""
    try:
        return auth.current_caller(local).username
    except errors.GatewayError:
        return None


def _name(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) and _NAME.match(value) else "(not a valid name)"
