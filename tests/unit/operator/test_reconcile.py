"""reconcile's concurrent pod calls: a failure cancels the rest and leaves no coroutine behind
(an un-awaited one prints a RuntimeWarning to stderr, which breaks the operator's JSON log)."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from agent_operator import reconcile


def test_a_failing_pod_call_cancels_the_rest_without_unawaited_coroutines():
    started: list[int] = []

    async def call(i: int) -> None:
        started.append(i)
        if i == 0:
            raise RuntimeError("refused")
        await asyncio.sleep(10)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ExceptionGroup):
            asyncio.run(reconcile._concurrently(lambda i=i: call(i) for i in range(3 * reconcile.POD_CALLS_AT_ONCE)))
        gc.collect()

    assert len(started) < 3 * reconcile.POD_CALLS_AT_ONCE  # the calls not begun were cancelled
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
