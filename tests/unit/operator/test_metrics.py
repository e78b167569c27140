"""The operator's metrics, driven through its real work queue: each reconcile observed by
outcome, failures counted, the queue's depth read at scrape time; exposed on a port of its own."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client import generate_latest

from agent_operator import metrics
from agent_operator.kube import Conflict
from agent_operator.workqueue import WorkQueue
from devcluster import ports
from tests.support import prometheus


async def test_reconciles_are_observed_by_outcome_and_failures_counted():
    observed = metrics.OperatorMetrics()
    answers = {"ok": None, "conflict": Conflict(), "broken": RuntimeError("boom")}
    done = asyncio.Event()
    seen: list[str] = []

    async def reconcile(_namespace: str, name: str) -> float | None:
        seen.append(name)
        if len(seen) == len(answers):
            done.set()
        answer = answers[name]
        if isinstance(answer, Exception):
            answers[name] = None  # the retry (with back-off, or at once after a conflict) succeeds
            raise answer
        return None

    queue = WorkQueue(observed.timed(reconcile), workers=1)
    queue.start()
    for name in answers:
        queue.add(("team-a", name))
    await asyncio.wait_for(done.wait(), 10)
    await queue.stop()
    text = generate_latest(observed.registry).decode()
    count = "agentclusters_operator_reconcile_duration_seconds_count"
    assert prometheus.value(text, count, outcome="conflict") == 1
    assert prometheus.value(text, count, outcome="error") == 1
    assert prometheus.value(text, count, outcome="success") >= 1
    assert prometheus.value(text, "agentclusters_operator_reconcile_errors_total") == 1
    assert prometheus.convention_problems(text) == []


async def test_queue_depth_counts_the_keys_waiting_for_a_worker():
    observed = metrics.OperatorMetrics()
    queue = WorkQueue(observed.timed(lambda *_: asyncio.sleep(0)), workers=1)  # not started: nothing is taken
    observed.watch_depth(queue.depth)
    for name in ("a", "b", "a"):
        queue.add(("team-a", name))
    text = generate_latest(observed.registry).decode()
    assert prometheus.value(text, "agentclusters_operator_workqueue_depth") == 2


def test_metrics_are_served_on_their_own_port_and_stop_with_the_operator():
    observed = metrics.OperatorMetrics()
    port = ports.free_port()
    observed.serve("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        observed.close()
    assert "agentclusters_operator_reconcile_duration_seconds_bucket" in prometheus.sample_names(text)
    assert not ports.port_open(port)


def test_two_operators_in_one_process_keep_their_own_registries():
    first, second = metrics.OperatorMetrics(), metrics.OperatorMetrics()
    first.watch_depth(lambda: 3)
    second.watch_depth(lambda: 0)
    assert prometheus.value(generate_latest(first.registry).decode(), "agentclusters_operator_workqueue_depth") == 3
    assert prometheus.value(generate_latest(second.registry).decode(), "agentclusters_operator_workqueue_depth") == 0
