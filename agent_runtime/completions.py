"""Completing fires in batches: many `CompleteFire`s, one round trip and one commit.

With durable commits (fsync on, as in production) a commit per fire caps one replica at
about a thousand fires a second however cheap its functions are. Runs that finish within a
few milliseconds of each other are completed together: every `CompleteFire` of a batch runs
in one transaction (asyncpg pipelines them), so the batch costs one commit. Each completion
keeps its own fencing and its own verdict; a batch is all-or-nothing, and a failed batch is
reported to each waiter, which retries its own completion (idempotent for its token).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field

import asyncpg

from agent_api.db import queries
from agent_runtime import fires

log = logging.getLogger(__name__)

MAX_BATCH = 64
# How long a completion waits for others to share its commit. Small next to any run, and
# a lone completion is sent at once when nothing else is pending.
GATHER_SECONDS = 0.002


@dataclass
class _Pending:
    args: tuple
    done: asyncio.Future[fires.Completion] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class Batcher:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def complete(self, fire: fires.Claim, status: str, error: str | None,
                       output: str | None, policy: fires.FailurePolicy,
                       now: dt.datetime | None) -> fires.Completion:
        """Like `fires.complete`, sharing a commit with completions that arrive meanwhile."""
        pending = _Pending(fires.complete_args(fire, status, error, output, policy, now))
        # Its waiter may be gone (cancelled) by the time the batch fails: mark it seen.
        pending.done.add_done_callback(_retrieve)
        self._queue.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="complete-fires")
        return await asyncio.shield(pending.done)

    async def _flush(self) -> None:
        while self._queue:
            if len(self._queue) < MAX_BATCH:
                await asyncio.sleep(GATHER_SECONDS)
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await conn.fetchmany(queries.SQL["CompleteFire"],
                                                [p.args for p in batch])
            except Exception as error:  # each waiter decides: retry (transient) or give up
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(error)
                continue
            for p, row in zip(batch, rows, strict=True):
                if not p.done.done():
                    p.done.set_result(fires.completion_of(row))

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
