"""A small controller work queue: deduplicated keys, one reconcile per key at a time.

The same shape as controller-runtime's: events only *enqueue* a key; workers take keys and
call the reconcile; a key added while it is being reconciled is reconciled once more
afterwards; failures come back with exponential back-off. kopf's own timers and daemons would
put a finalizer on every AgentCluster; this keeps deletion free of the operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agent_operator.kube import Conflict

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Reconcile = Callable[[str, str], Awaitable[float | None]]

MAX_BACKOFF_SECONDS = 60.0
# A 409 means the object read was older than the API server's: the reconcile reads from a
# watch-fed cache, which has the newer version a few milliseconds later. Looking again at once
# would read the same old copy and spin on 409s.
CONFLICT_RETRY_SECONDS = 0.2


class WorkQueue:
    def __init__(self, reconcile: Reconcile, workers: int) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def add(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)  # reconcile once more when the current pass ends
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def depth(self) -> int:
        """Keys waiting for a worker (not those being reconciled now)."""
        return len(self._queued)

    def add_after(self, key: Key, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if (timer := self._timers.get(key)) is not None:
            if timer.when() <= loop.time() + seconds:
                return
            timer.cancel()
        self._timers[key] = loop.call_later(seconds, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"reconcile-worker-{i}")
                       for i in range(self._workers)]

    async def stop(self) -> None:
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                again = await self._reconcile(*key)
                self._failures.pop(key, None)
                if again is not None:
                    self.add_after(key, again)
            except Conflict:
                # Someone wrote the object since we read it: look again once the watch has it.
                self.add_after(key, CONFLICT_RETRY_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping:
                    # Stopped (the Lease was lost, or shutdown) while the reconcile's pod calls
                    # ran in a TaskGroup: the fenced client refused them, and the group raised
                    # their errors instead of the cancellation. Stop anyway; the next leader
                    # reconciles. (Not `Task.cancelling()`: Python 3.11's TaskGroup leaves it
                    # raised after any failed child.)
                    raise asyncio.CancelledError from None
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))
                log.exception("reconcile of %s/%s failed (attempt %d); retrying in %.1fs",
                              *key, failures, delay)
                self.add_after(key, delay)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
