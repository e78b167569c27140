"""`GET /metrics` of one Prometheus registry on a plain-HTTP port of its own.

The operator and the gateway serve their metrics apart from their main servers (kopf's is TLS
for the API server only; the gateway's MCP port may be published by an Ingress), in a thread,
so a scrape never waits on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server


def serve(registry: CollectorRegistry, host: str, port: int) -> Callable[[], None] | None:
    """Start serving `registry` on host:port; returns what stops it (None for port 0: off)."""
    if not port:
        return None
    server, thread = start_http_server(port, host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
