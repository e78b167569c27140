"""Posting to channels: Slack incoming webhooks, Discord webhooks and generic JSON webhooks.

Each message is tried up to `attempts` times with exponential back-off on connection errors,
timeouts, 429 and 5xx (a `Retry-After` within the back-off cap is honoured); any other 4xx is
permanent. Every delivery, delivered or failed, is a row in `channel_deliveries` with each
attempt's error; a failure also raises `ChannelError` so the caller (the model, through its
tool) hears about it. The channel URL is a credential: it is never logged or stored, only the
channel's name is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from agent_api import secret_env
from agent_api.db import queries
from agent_runtime.ai import redaction

log = logging.getLogger(__name__)


class ChannelError(Exception):
    """A message could not be delivered; the delivery is recorded as failed."""


@dataclass(frozen=True)
class Delivery:
    id: int
    channel: str
    status: str  # 'delivered' | 'failed'
    attempts: int
    errors: list[str]


@dataclass(frozen=True)
class Where:
    """Who posts: the replica, and the run it posts from (None for chat)."""

    namespace: str
    cluster: str
    replica: str
    run_id: int | None = None


def body(channel_type: str, text: str, where: Where, channel: str) -> dict[str, Any]:
    if channel_type == "slack":
        return {"text": text}
    if channel_type == "discord":
        return {"content": text[:2000]}  # Discord refuses longer messages
    return {"text": text, "channel": channel, "agent": where.cluster,
            "namespace": where.namespace, "replica": where.replica}


class ChannelSender:
    def __init__(self, pool: asyncpg.Pool, session: aiohttp.ClientSession,
                 types: dict[str, str], urls: dict[str, str], *, attempts: int = 4,
                 backoff_seconds: float = 0.5, max_backoff_seconds: float = 8.0,
                 timeout_seconds: float = 10.0) -> None:
        self._pool = pool
        self._session = session
        self._types = types  # channel name -> slack | discord | webhook
        self._urls = urls  # channel name -> URL (from the environment)
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(self, channel: str, text: str, where: Where) -> Delivery:
        started = dt.datetime.now(dt.UTC)
        channel_type = self._types.get(channel, "unknown")
        errors: list[str] = []
        attempts = 0
        url = self._urls.get(channel)
        if channel not in self._types:
            errors.append(f"channel {channel!r} is not defined in spec.channels")
        elif not url:
            errors.append(f"channel {channel!r} has no URL: environment variable "
                          f"{secret_env.channel_url(channel)} is not set")
        else:
            attempts, delivered = await self._post(url, body(channel_type, text, where, channel),
                                                   channel, errors)
            if delivered:
                return await self._record(where, channel, channel_type, "delivered", attempts,
                                          errors, text, started)
        delivery = await self._record(where, channel, channel_type, "failed", attempts, errors,
                                      text, started)
        log.error("channel delivery failed", extra={"channel": channel, "attempts": attempts,
                                                    "error": errors[-1], "delivery": delivery.id})
        raise ChannelError(f"delivery to channel {channel!r} failed after {attempts} attempt(s): "
                           f"{errors[-1]} (recorded as delivery {delivery.id})")

    async def _post(self, url: str, payload: dict[str, Any], channel: str,
                    errors: list[str]) -> tuple[int, bool]:
        for attempt in range(1, self._attempts + 1):
            delay = min(self._backoff * 2 ** (attempt - 1), self._max_backoff)
            try:
                async with self._session.post(url, json=payload, timeout=self._timeout) as response:
                    detail = (await response.text())[:300]
                    if response.status < 300:
                        return attempt, True
                    errors.append(redaction.scrub(f"HTTP {response.status}: {detail}"))
                    if response.status != 429 and response.status < 500:
                        return attempt, False  # the request is wrong; retrying will not fix it
                    delay = _retry_after(response, delay, self._max_backoff)
            except (aiohttp.ClientError, TimeoutError) as error:
                # aiohttp quotes the URL in some errors: scrub before keeping the message.
                errors.append(redaction.scrub(f"{type(error).__name__}: {error}") or
                              type(error).__name__)
            log.warning("channel delivery attempt failed", extra={
                "channel": channel, "attempt": attempt, "error": errors[-1]})
            if attempt < self._attempts:
                await asyncio.sleep(delay)
        return self._attempts, False

    async def _record(self, where: Where, channel: str, channel_type: str, status: str,
                      attempts: int, errors: list[str], text: str, started: dt.datetime) -> Delivery:
        delivery_id = await self._pool.fetchval(
            queries.SQL["InsertChannelDelivery"], where.namespace, where.cluster, where.replica,
            channel, channel_type, where.run_id, status, attempts,
            json.dumps([redaction.scrub(e) for e in errors]), redaction.scrub(text), started,
        )
        return Delivery(delivery_id, channel, status, attempts, errors)


def _retry_after(response: aiohttp.ClientResponse, default: float, cap: float) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return default
    return seconds if 0 <= seconds <= cap else default
