"""Functions the runtime tests call through `python` function specs (`module:callable`)."""

from __future__ import annotations

import asyncio
import os
import time

CALLS: list[dict] = []


def sync_echo(context):
    CALLS.append({"kind": "sync", "replica": context.replica, "key": context.idempotency_key,
                  "state": dict(context.state)})
    return {"echo": context.payload, "replica": context.replica}


async def async_echo(context):
    await asyncio.sleep(0)
    CALLS.append({"kind": "async", "replica": context.replica, "key": context.idempotency_key})
    return {"echo": context.payload, "replica": context.replica}


async def sleepy(context):
    """Sleeps `payload.seconds`, or `payload.slow_seconds` on `payload.slow_replica`."""
    seconds = context.payload.get("seconds", 0)
    if context.replica == context.payload.get("slow_replica"):
        seconds = context.payload.get("slow_seconds", 60)
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def blocking_sleep(context):
    time.sleep(context.payload.get("seconds", 0.1))
    return {"pid": os.getpid()}


def fail(context):
    raise RuntimeError(f"boom on {context.replica}")
