"""The replica's Prometheus metrics, kept by `prometheus_client` on a registry of its own.

A registry per `Metrics` object, never the library's global one: tests (and the benchmark)
run several replicas in one process, and each must expose only its own numbers.

Naming (docs/operations.md, "Metrics"): every name starts `agentclusters_`, counters end
`_total`, durations are `_seconds`. Every series carries the replica's identity as
`agentcluster_namespace`, `agentcluster` and `agent_replica`: the plain `namespace`, `pod`,
`cluster`, `replica`, `job` and `instance` belong to the scrape's target labels (service
discovery, Thanos' external labels), and a clash would rename or drop ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent_runtime.ai import providers

# The text format carries each counter's and histogram's creation time as a series of its own
# (`..._created`): twice the series for nothing a dashboard or alert here uses.
disable_created_metrics()

IDENTITY = ("agentcluster_namespace", "agentcluster", "agent_replica")
CONTENT_TYPE = CONTENT_TYPE_LATEST

# A run is anything from a 50 ms HTTP call to a multi-minute model loop.
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# How long after its fire time a fire started: tens of ms when healthy, the grace when not.
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The counters of one replica; `render()` is what `/metrics` answers."""

    def __init__(self, namespace: str, cluster: str, replica: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._identity = (namespace, cluster, replica)
        r = self.registry
        self._runs = Counter("agentclusters_runs_total", "Finished runs by trigger and outcome (succeeded, failed, "
                             "released: handed back, rejected: a stale fencing token).",
                             [*IDENTITY, "trigger", "outcome"], registry=r)
        self._duration = Histogram("agentclusters_run_duration_seconds", "How long a function or chat turn ran.",
                                   [*IDENTITY, "trigger"], buckets=RUN_BUCKETS, registry=r)
        self._lateness = Histogram("agentclusters_fire_lateness_seconds",
                                   "Time from a fire's scheduled time to its claim by this replica.",
                                   IDENTITY, buckets=LATENESS_BUCKETS, registry=r)
        self._claims = Counter("agentclusters_fire_claims_total", "Fires this replica claimed.", IDENTITY, registry=r)
        self._fencing = Counter("agentclusters_fencing_rejections_total",
                                "Lease renewals or completions rejected because another replica holds the fire now.",
                                IDENTITY, registry=r)
        self._self_fenced = Counter("agentclusters_self_fenced_runs_total",
                                    "Runs cancelled because their lease could not be renewed in time.",
                                    IDENTITY, registry=r)
        self._missed = Counter("agentclusters_fires_missed_total",
                               "Fires recorded as missed (not started within missedFireGraceSeconds).",
                               IDENTITY, registry=r)
        self._tokens = Counter("agentclusters_ai_tokens_total", "Tokens the AI provider reported, by type.",
                               [*IDENTITY, "provider", "token_type"], registry=r)
        self._provider_errors = Counter("agentclusters_ai_provider_errors_total",
                                        "Failed model calls by provider and kind (auth, rate_limit, timeout, "
                                        "server, bad_request, connection, malformed_tool_call, sdk).",
                                        [*IDENTITY, "provider", "kind"], registry=r)
        self._deliveries = Counter("agentclusters_webhook_deliveries_total",
                                   "Signed webhook deliveries this replica answered, by HTTP status.",
                                   [*IDENTITY, "code"], registry=r)
        self.in_flight = Gauge("agentclusters_runs_in_flight", "Runs executing now.", IDENTITY,
                               registry=r).labels(*self._identity)
        self._ready = Gauge("agentclusters_replica_ready", "1 when the replica is ready to serve.", IDENTITY,
                            registry=r)
        # Series without further labels exist from the start (0), so a rate() has a baseline
        # and a dashboard shows 0 rather than "no data".
        for counter in (self._claims, self._fencing, self._self_fenced, self._missed):
            counter.labels(*self._identity)
        self._lateness.labels(*self._identity)

    def watch_ready(self, ready: Callable[[], bool]) -> None:
        """The readiness gauge asks `ready` at each scrape."""
        self._ready.labels(*self._identity).set_function(lambda: float(ready()))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def run_finished(self, trigger: str, outcome: str) -> None:
        self._runs.labels(*self._identity, trigger, outcome).inc()

    @contextmanager
    def timed_run(self, trigger: str) -> Iterator[None]:
        """Observes the run's duration however it ends."""
        started = time.monotonic()
        try:
            yield
        finally:
            self._duration.labels(*self._identity, trigger).observe(time.monotonic() - started)

    def claimed(self, lateness_seconds: float) -> None:
        self._claims.labels(*self._identity).inc()
        # A clock a little behind the database's must not make a fire early.
        self._lateness.labels(*self._identity).observe(max(lateness_seconds, 0.0))

    def fencing_rejected(self) -> None:
        self._fencing.labels(*self._identity).inc()

    def self_fenced(self) -> None:
        self._self_fenced.labels(*self._identity).inc()

    def missed(self, count: int) -> None:
        self._missed.labels(*self._identity).inc(count)

    def webhook_delivery(self, status: int) -> None:
        self._deliveries.labels(*self._identity, str(status)).inc()

    def counting(self, provider: providers.Provider) -> providers.Provider:
        """`provider` with every model call counted: tokens by type, failures by kind."""
        return CountedProvider(provider, self)

    def provider_completed(self, provider: str, completion: providers.Completion) -> None:
        self._tokens.labels(*self._identity, provider, "input").inc(completion.input_tokens)
        self._tokens.labels(*self._identity, provider, "output").inc(completion.output_tokens)

    def provider_failed(self, provider: str, kind: str) -> None:
        self._provider_errors.labels(*self._identity, provider, kind).inc()


class CountedProvider:
    """A provider whose calls are counted; answers and errors pass through unchanged."""

    def __init__(self, inner: providers.Provider, counters: Metrics) -> None:
        self._inner = inner
        self._metrics = counters
        self.name = inner.name

    async def complete(self, system: str | None, messages: list[providers.Message],
                       tools: list[providers.ToolSpec], max_output_tokens: int) -> providers.Completion:
        try:
            completion = await self._inner.complete(system, messages, tools, max_output_tokens)
        except providers.ProviderError as error:
            self._metrics.provider_failed(self.name, error.kind)
            raise
        except Exception:
            # An SDK's own failure (bad settings, an odd response): the loop records it too.
            self._metrics.provider_failed(self.name, "sdk")
            raise
        self._metrics.provider_completed(self.name, completion)
        return completion
