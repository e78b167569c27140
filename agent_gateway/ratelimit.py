"""Per-caller rate limits, shared by every gateway instance through Redis, without a Redis round
trip per call.

A fixed one-minute window per caller, as a counter in Redis named after the caller and the
minute. Each gateway counts calls in memory (`Tally`) and adds them to Redis in batches
(`INCRBY`, one pipeline for every caller at once): in the background every SYNC_SECONDS, and at
once when a caller has `batch` calls this gateway has not added yet. Each INCRBY answers the
window's total across every gateway, which becomes this gateway's view of the others' calls.

How approximate: a gateway judges a call on the last total it read plus its own calls since;
the others' calls since then it cannot see. Since it synchronises at least every `batch` calls
of a caller, it admits fewer than `batch` calls of a caller past the moment the shared total
reached the limit: a caller gets at most `(batch - 1) x gateways` calls more than the limit in
a window, `batch` being a twentieth of the limit (`batch_for`), so under 5 % per gateway; a
limit under 40 synchronises every call (exact, as before). Never fewer than the limit: the
estimate is never above the true count (the counter only grows within its window), so a refusal
is always right. While Redis cannot be reached, each gateway limits on its own counts alone (a
caller gets the limit from each gateway) and says so in its log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from agent_api import redis_keys
from agent_gateway import errors

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# How often counted calls are added to Redis when no caller fills a batch: how fresh one
# gateway's view of the others' calls is for a caller who calls slowly.
SYNC_SECONDS = 1.0
MAX_BATCH = 50


def key(caller_key: str, window: int) -> str:
    return f"{redis_keys.PREFIX}:gateway:ratelimit:{caller_key}:{window}"


def batch_for(per_minute: int) -> int:
    """Calls of one caller a gateway may count before it must synchronise: a twentieth of the
    limit (so the overshoot per gateway stays under 5 %), between 1 and MAX_BATCH."""
    return max(1, min(MAX_BATCH, per_minute // 20))


@dataclass
class Tally:
    """One caller's calls in one window, as this gateway knows them."""

    window: int
    shared: int = 0
    """The window's total in Redis (every gateway's calls) as last read."""
    pending: int = 0
    """This gateway's calls not yet sent to Redis."""
    sending: int = 0
    """This gateway's calls in an INCRBY whose answer has not come back."""

    @property
    def estimate(self) -> int:
        return self.shared + self.sending + self.pending


class Counts:
    """The in-memory half of the limiter, with no I/O: what to count, what to send, what Redis
    answered."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.tallies: dict[str, Tally] = {}

    def count(self, caller_key: str, window: int) -> tuple[int, bool]:
        """Count one call: (the window's estimated total including it, whether this caller's
        unsent calls fill a batch, so the count must be synchronised before it is trusted)."""
        tally = self.tallies.get(caller_key)
        if tally is None or tally.window != window:
            tally = self.tallies[caller_key] = Tally(window)
        tally.pending += 1
        return tally.estimate, tally.pending >= self.batch

    def take(self, window: int) -> list[tuple[str, int, int]]:
        """The calls to send now, (caller key, window, calls) for every caller of `window`
        (those with none still learn the others' total); older windows are dropped."""
        taken = []
        for caller_key, tally in list(self.tallies.items()):
            if tally.window != window:
                del self.tallies[caller_key]
                continue
            taken.append((caller_key, tally.window, tally.pending))
            tally.sending += tally.pending
            tally.pending = 0
        return taken

    def sent(self, caller_key: str, window: int, calls: int, total: int | None) -> None:
        """Redis answered an INCRBY of `calls` with `total` (None: it failed, the calls are
        pending again)."""
        tally = self.tallies.get(caller_key)
        if tally is None or tally.window != window:
            return
        tally.sending -= calls
        if total is None:
            tally.pending += calls
        else:
            tally.shared = max(tally.shared, total)


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, per_minute: int, sync_seconds: float = SYNC_SECONDS) -> None:
        self._redis = redis
        self.per_minute = per_minute
        self._counts = Counts(batch_for(per_minute))
        self._sync_seconds = sync_seconds
        self._lock = asyncio.Lock()
        self._syncer: asyncio.Task[None] | None = None
        self._failing = False

    async def hit(self, subject_key: str, now: float | None = None) -> tuple[int, int]:
        """Count one request of `subject_key` in the current window: (requests so far this
        window across every gateway, as well as this one knows; seconds until the next window)."""
        now = time.time() if now is None else now
        window = int(now // WINDOW_SECONDS)
        count, full = self._counts.count(subject_key, window)
        if full:
            # This gateway may not count further on its own: add up with the others first.
            await self.sync(window)
            tally = self._counts.tallies.get(subject_key)
            count = tally.estimate if tally is not None else count
        self._ensure_syncing()
        return count, int((window + 1) * WINDOW_SECONDS - now) + 1

    async def check(self, caller_key: str, caller_name: str, now: float | None = None) -> None:
        if self.per_minute <= 0:
            return
        count, wait = await self.hit(caller_key, now)
        if count > self.per_minute:
            raise errors.GatewayError(
                f"rate limit exceeded: {caller_name} made {count} tool calls this minute; the limit is "
                f"{self.per_minute} per minute per caller; retry in {wait}s", code="rate_limited",
                retry_after_seconds=wait)

    async def sync(self, window: int | None = None) -> None:
        """Send every counted call to Redis in one pipeline and read back the totals."""
        window = int(time.time() // WINDOW_SECONDS) if window is None else window
        async with self._lock:
            taken = self._counts.take(window)
            if not taken:
                return
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for caller_key, taken_window, calls in taken:
                        name = key(caller_key, taken_window)
                        pipe.incrby(name, calls)
                        pipe.expire(name, WINDOW_SECONDS * 2)
                    answers = await pipe.execute()
            except (RedisError, OSError) as exc:
                for caller_key, taken_window, calls in taken:
                    self._counts.sent(caller_key, taken_window, calls, None)
                if not self._failing:
                    log.warning("rate limit counts cannot be added up in Redis (%s); each gateway limits on "
                                "its own counts until it can", exc)
                self._failing = True
                return
            if self._failing:
                log.info("rate limit counts are added up in Redis again")
            self._failing = False
            for (caller_key, taken_window, calls), total in zip(taken, answers[0::2], strict=True):
                self._counts.sent(caller_key, taken_window, calls, int(total))

    def _ensure_syncing(self) -> None:
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.create_task(self._sync_forever(), name="rate limit sync")

    async def _sync_forever(self) -> None:
        # Ends once nothing is counted: an idle gateway sends nothing.
        while self._counts.tallies:
            await asyncio.sleep(self._sync_seconds)
            await self.sync()

    async def close(self) -> None:
        """Send what is counted, then stop."""
        if self._syncer is not None:
            self._syncer.cancel()
            await asyncio.gather(self._syncer, return_exceptions=True)
        await self.sync()
