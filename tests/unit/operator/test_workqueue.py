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


async def test_a_reconcile_whose_pod_calls_failed_is_retried_while_the_queue_runs():
    """A failed pod call ends the reconcile's TaskGroup with an ExceptionGroup (and, in Python
    3.11, leaves the worker's `cancelling()` raised): the worker retries, it does not stop."""
    calls: list[str] = []
    again = asyncio.Event()

    async def refused() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("the API server said no")

    async def reconcile(namespace: str, name: str) -> float | None:
        calls.append(name)
        if len(calls) == 1:
            async with asyncio.TaskGroup() as group:
                group.create_task(refused())
                group.create_task(asyncio.sleep(1))
        again.set()
        return None

    queue = WorkQueue(reconcile, workers=1)
    queue.start()
    queue.add(("ns", "flaky"))
    await asyncio.wait_for(again.wait(), 5)
    await queue.stop()
    assert calls == ["flaky", "flaky"]
