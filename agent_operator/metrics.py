"""The operator's Prometheus metrics (`prometheus_client`, a registry of its own) and the
plain-HTTP listener that serves them.

A registry per `OperatorMetrics`, never the library's global one, so tests that run several
components in one process each see only their own numbers. The listener is a port of its own
(`metricsPort` in the settings; 0 serves nothing): kopf's admission server is TLS for the API
server only.

Names and labels follow docs/operations.md "Metrics": `agentclusters_operator_...`, counters
`_total`, durations `_seconds`; no label that a scrape attaches itself (`namespace`, `pod`,
`job`, `instance`, ...). Reconcile metrics carry no per-cluster label: one series per outcome
stays bounded however many AgentClusters there are (the operator's log names each one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from agent_api import metrics_http
from agent_operator.kube import Conflict

# The text format would carry each counter's creation time as a series of its own.
disable_created_metrics()

Reconcile = Callable[[str, str], Awaitable[float | None]]

RECONCILE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OUTCOMES = ("success", "conflict", "error")


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._duration = Histogram("agentclusters_operator_reconcile_duration_seconds",
                                   "How long one reconcile of an AgentCluster took, by outcome (success, conflict: "
                                   "re-queued after a 409, error: retried with back-off).",
                                   ["outcome"], buckets=RECONCILE_BUCKETS, registry=r)
        self._errors = Counter("agentclusters_operator_reconcile_errors_total",
                               "Reconciles that failed and were re-queued with back-off.", registry=r)
        self._depth = Gauge("agentclusters_operator_workqueue_depth",
                            "AgentClusters waiting in the work queue for a worker.", registry=r)
        self._leader = Gauge("agentclusters_operator_leader",
                             "1 while this operator replica holds the Lease and reconciles, 0 while it "
                             "only serves admission and waits for the Lease.", registry=r)
        for outcome in OUTCOMES:
            self._duration.labels(outcome)
        self._stop: Callable[[], None] | None = None

    def leading(self, leads: bool) -> None:
        self._leader.set(1 if leads else 0)

    def watch_depth(self, depth: Callable[[], int]) -> None:
        """The queue-depth gauge asks `depth` at each scrape."""
        self._depth.set_function(lambda: float(depth()))

    def timed(self, reconcile: Reconcile) -> Reconcile:
        """`reconcile`, observed: its duration by outcome, and failures counted. A cancelled
        reconcile (the operator stopping) is not an outcome."""
        async def timed_reconcile(namespace: str, name: str) -> float | None:
            started = time.monotonic()
            outcome = "error"
            try:
                again = await reconcile(namespace, name)
                outcome = "success"
                return again
            except Conflict:
                outcome = "conflict"
                raise
            except asyncio.CancelledError:
                outcome = ""
                raise
            finally:
                if outcome:
                    self._duration.labels(outcome).observe(time.monotonic() - started)
                if outcome == "error":
                    self._errors.inc()

        return timed_reconcile

    def serve(self, host: str, port: int) -> None:
        """Serve `/metrics` on host:port in a thread of its own (a scrape never waits on the
        event loop); port 0 serves nothing."""
        self._stop = metrics_http.serve(self.registry, host, port)

    def close(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None
