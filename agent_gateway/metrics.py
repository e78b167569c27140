"""The gateway's Prometheus metrics (`prometheus_client`, a registry of its own) and the
plain-HTTP listener that serves them.

A port of its own (`--metrics-port`, 0 serves nothing), not a route beside `/mcp`: the
gateway's HTTP port is what an Ingress publishes, and tool names and error rates are for the
platform team's Prometheus, not for the internet.

Names and labels follow docs/operations.md "Metrics": `agentclusters_gateway_...`, counters
`_total`, durations `_seconds`. Tool calls carry `tool` and `outcome` (`ok` or the error code
of `errors.CODES`) and no caller or namespace: series stay bounded by tools x codes, and who
called what is the audit log's job.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from starlette.requests import Request
from starlette.responses import Response

from agent_api import metrics_http
from agent_gateway import errors

# The text format would carry each counter's creation time as a series of its own.
disable_created_metrics()

TOOL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 330)
CallTool = Callable[..., Awaitable[Any]]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._calls = Counter("agentclusters_gateway_tool_calls_total",
                              "MCP tool calls by tool and outcome (ok, or the error code answered).",
                              ["tool", "outcome"], registry=r)
        self._latency = Histogram("agentclusters_gateway_tool_call_duration_seconds",
                                  "How long a tool call took to answer, by tool.", ["tool"],
                                  buckets=TOOL_BUCKETS, registry=r)
        self._deliveries = Counter("agentclusters_gateway_webhook_deliveries_total",
                                   "Webhook deliveries the gateway answered, by HTTP status (the replica's "
                                   "own when it was forwarded).", ["code"], registry=r)
        self._stop: Callable[[], None] | None = None
        self.tools: frozenset[str] | None = None
        """The server's tool names, read at the first call: a name no tool has is counted as
        `unknown`, so a caller cannot mint new series."""

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        self._calls.labels(tool, outcome).inc()
        self._latency.labels(tool).observe(seconds)

    def delivery(self, status: int) -> None:
        self._deliveries.labels(str(status)).inc()

    def serve(self, host: str, port: int) -> None:
        """Serve `/metrics` on host:port in a thread of its own; port 0 serves nothing."""
        self._stop = metrics_http.serve(self.registry, host, port)

    def close(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def observed(call_tool: CallTool) -> CallTool:
    """Decorates `GatewayServer.call_tool`: every call counted by tool and outcome, and timed.
    The server's `gateway_metrics` attribute (set by `build_server`) is where they go."""

    @functools.wraps(call_tool)
    async def observed_call_tool(server: Any, name: str, arguments: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        result = await call_tool(server, name, arguments, *args, **kwargs)
        gateway: GatewayMetrics = server.gateway_metrics
        if gateway.tools is None:
            gateway.tools = frozenset(tool.name for tool in await server.list_tools())
        tool = name if name in gateway.tools else "unknown"
        gateway.tool_call(tool, errors.outcome(result), time.monotonic() - started)
        return result

    return observed_call_tool


def counted_deliveries(hook: Callable[[Request], Awaitable[Response]],
                       gateway: GatewayMetrics) -> Callable[[Request], Awaitable[Response]]:
    """The webhook endpoint, with every answer counted by its status."""

    @functools.wraps(hook)
    async def counted_hook(request: Request) -> Response:
        answer = await hook(request)
        gateway.delivery(answer.status_code)
        return answer

    return counted_hook
