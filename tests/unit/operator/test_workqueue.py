"""The work queue stops when asked, whatever its reconciles raise on the way out."""

from __future__ import annotations

import asyncio

import pytest

from agent_operator.workqueue import WorkQueue


@pytest.mark.timeout(20)  # on failure the worker never ends: stop() and wait_for hang
async def test_stop_ends_a_worker_whose_reconcile_fails_while_it_is_cancelled():
    """Losing the Lease cancels the workers while their pod calls run in a TaskGroup; the fenced
    client then refuses those calls, so the group ends with an ExceptionGroup, not
    CancelledError. The worker must still end: the elector waits for it before campaigning
    again (in CI an operator that lost the Lease under load never led again)."""
    started = asyncio.Event()

    async def refused_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("not the leader: refusing DELETE") from None

    async def reconcile(namespace: str, name: str) -> float | None:
        async with asyncio.TaskGroup() as group:
            group.create_task(refused_when_cancelled())
            started.set()
        return None

    queue = WorkQueue(reconcile, workers=1)
    queue.start()
    queue.add(("ns", "busy"))
    await asyncio.wait_for(started.wait(), 5)

    await asyncio.wait_for(queue.stop(), 5)


async def test_a_failed_reconcile_is_retried_while_the_queue_runs():
    calls: list[str] = []
    again = asyncio.Event()

    async def reconcile(namespace: str, name: str) -> float | None:
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("the API server said no")
        again.set()
        return None

    queue = WorkQueue(reconcile, workers=1)
    queue.start()
    queue.add(("ns", "flaky"))
    await asyncio.wait_for(again.wait(), 5)
    await queue.stop()
    assert calls == ["flaky", "flaky"]
