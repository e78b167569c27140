"""Channel delivery: retries with back-off then success; permanent failures recorded, never
dropped; the channel URL never stored."""

from __future__ import annotations

import json
import uuid

import aiohttp
import asyncpg
import pytest

from agent_runtime.ai import channels, redaction
from devcluster import ports
from tests.integration.runtime import harness
from tests.support.sink import Sink

WHERE = channels.Where(harness.NAMESPACE, harness.CLUSTER, "calm-cat")


@pytest.fixture
async def setup(database_url):
    await harness.migrated(database_url)
    sink = await Sink().start()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    session = aiohttp.ClientSession()
    yield pool, session, sink
    await session.close()
    await pool.close()
    await sink.stop()


def _sender(pool, session, urls, **types) -> channels.ChannelSender:
    return channels.ChannelSender(pool, session, types, urls, attempts=4, backoff_seconds=0.01)


async def _deliveries(database_url):
    return await harness.fetch(database_url, "SELECT * FROM channel_deliveries ORDER BY id")


async def test_server_errors_are_retried_until_delivered(database_url, setup):
    pool, session, sink = setup
    sink.statuses = [500, 503]
    sender = _sender(pool, session, {"ops": sink.url("/discord/hook")}, ops="discord")
    delivery = await sender.send("ops", "deploy finished", WHERE)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [r.body for r in sink.received] == [{"content": "deploy finished"}] * 3
    row = (await _deliveries(database_url))[0]
    assert (row["status"], row["attempts"], row["channel_type"]) == ("delivered", 3, "discord")
    assert json.loads(row["errors"]) == ["HTTP 500: sink says 500", "HTTP 503: sink says 503"]


async def test_generic_webhook_body_names_the_replica(database_url, setup):
    pool, session, sink = setup
    sender = _sender(pool, session, {"hook": sink.url("/in")}, hook="webhook")
    await sender.send("hook", "hi", WHERE)
    assert sink.received[0].body == {"text": "hi", "channel": "hook", "agent": harness.CLUSTER,
                                     "namespace": harness.NAMESPACE, "replica": "calm-cat"}


async def test_permanent_failure_is_recorded_and_raised(database_url, setup):
    pool, session, sink = setup
    sink.statuses = [404]
    sender = _sender(pool, session, {"ops": sink.url("/slack/gone")}, ops="slack")
    with pytest.raises(channels.ChannelError, match=r"failed after 1 attempt\(s\): HTTP 404"):
        await sender.send("ops", "lost?", WHERE)
    row = (await _deliveries(database_url))[0]
    assert (row["status"], row["attempts"], row["message"]) == ("failed", 1, "lost?")
    assert "HTTP 404" in json.loads(row["errors"])[0]


async def test_unreachable_channel_fails_after_every_attempt_without_storing_its_url(database_url, setup):
    pool, session, _sink = setup
    url = f"http://127.0.0.1:{ports.free_port()}/services/{uuid.uuid4().hex}"
    redaction.register(url, "AGENT_CHANNEL_OPS_URL")
    sender = _sender(pool, session, {"ops": url}, ops="slack")
    with pytest.raises(channels.ChannelError) as caught:
        await sender.send("ops", "anyone?", WHERE)
    assert url not in str(caught.value)
    row = (await _deliveries(database_url))[0]
    assert (row["status"], row["attempts"]) == ("failed", 4)
    assert len(json.loads(row["errors"])) == 4
    assert url.split("/", 3)[3] not in json.dumps(dict(row), default=str)


async def test_a_channel_without_its_url_secret_is_a_recorded_failure(database_url, setup):
    pool, session, _sink = setup
    sender = _sender(pool, session, {}, ops="slack")
    with pytest.raises(channels.ChannelError, match="AGENT_CHANNEL_OPS_URL is not set"):
        await sender.send("ops", "x", WHERE)
    assert (await _deliveries(database_url))[0]["status"] == "failed"
