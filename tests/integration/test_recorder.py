"""The execution recorder (tests/support/recorder.py) the fault tests count with.

A fault test's verdict rests on the recorder telling a completed execution from one whose
client hung up, and on its overlap check; both are checked here with a real HTTP client.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support import recorder as recorder_module


@pytest.fixture
def recorder():
    started = recorder_module.Recorder(statuses=[500]).start()
    yield started
    started.stop()


def _body(key: str, replica: str, seconds: float) -> dict:
    return {"idempotency_key": key, "replica": replica, "attempt": 1,
            "payload": {"seconds": seconds}}


async def _poll(condition, within: float = 30.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the recorder never saw it")


async def test_completed_aborted_and_overlapping_executions(recorder):
    async with aiohttp.ClientSession() as session:
        async with session.post(recorder.url, json=_body("k1", "a", 0)) as response:
            assert response.status == 500  # the scripted status first
        async with session.post(recorder.url, json=_body("k1", "a", 0)) as response:
            assert response.status == 200
        assert [e.status for e in recorder.completions("k1")] == [500, 200]
        assert not recorder.overlapping()

        slow = asyncio.create_task(session.post(recorder.url, json=_body("k2", "a", 30)))

        await _poll(lambda: recorder.running("k2"))
        async with session.post(recorder.url, json=_body("k2", "b", 0)) as response:
            assert response.status == 200
        assert len(recorder.overlapping()) == 1  # b ran while a was still running
        slow.cancel()  # the client hangs up
        await asyncio.gather(slow, return_exceptions=True)

    await _poll(lambda: any(e.aborted is not None for e in recorder.executions("k2")))
    first, second = recorder.executions("k2")
    assert (first.replica, first.completed, first.aborted is not None) == ("a", False, True)
    assert second.completed and first.overlaps(second)
    assert [e.replica for e in recorder.completions("k2")] == ["b"]
    assert recorder.idempotency_keys() == {"k1", "k2"}
