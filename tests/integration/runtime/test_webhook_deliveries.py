"""Signed webhook deliveries verified by the replica itself: timestamp, delivery id and path
are signed with the body; a delivery is accepted once within the tolerance window (its id is
kept in Redis); every refusal says what was wrong. Real runtime processes, PostgreSQL, Redis.

The gateway forwards deliveries here (`POST /hooks/{webhook-name}` with the replica token);
these tests play the gateway, so each request carries the token too.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

import httpx

from agent_api import secret_env, webhook_signatures
from devcluster import ports
from tests.integration.runtime import harness
from tests.integration.runtime.harness import CLUSTER, NAMESPACE

SECRET = b"hook-secret-for-tests"
BODY = b'{"event": "push", "n": 1}'
GITHUB = webhook_signatures.hook_path(NAMESPACE, CLUSTER, "/github")
SYNC = webhook_signatures.hook_path(NAMESPACE, CLUSTER, "/sync")


def _hook(name: str, path: str, function: str, **extra: object) -> dict:
    return {"name": name, "path": path, "function": function,
            "secretRef": {"name": "hooks", "key": "secret"}, **extra}


async def _serving(spawn, database_url: str, redis: str | None = None, **limits: int) -> harness.RuntimeProcess:
    await harness.migrated(database_url)
    spec = harness.spec_with(
        [harness.python_function("echo", "async_echo"), harness.python_function("sleepy", "sleepy")], [],
        **limits)
    spec["webhooks"] = [_hook("gh", "/github", "echo"), _hook("sync", "/sync", "echo", synchronous=True),
                        _hook("slow", "/slow", "sleepy"), _hook("unset", "/unset", "echo")]
    await harness.write_spec(database_url, 1, spec)
    env = {secret_env.webhook_secret(name): SECRET.decode() for name in ("gh", "sync", "slow")}
    process = spawn("daring-duck", database_url, redis, **env)
    await harness.until_serving(process)
    return process


async def _deliver(process: harness.RuntimeProcess, name: str, headers: dict[str, str],
                   body: bytes = BODY, auth: dict[str, str] = harness.AUTH) -> httpx.Response:
    async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
        return await http.post(f"/hooks/{name}", content=body,
                               headers={**auth, "Content-Type": "application/json", **headers})


async def _webhook_runs(database_url: str) -> list[dict]:
    rows = await harness.fetch(database_url, "SELECT id, status, output FROM runs WHERE trigger = 'webhook' "
                                             "ORDER BY id")
    return [dict(r) for r in rows]


async def test_a_signed_synchronous_delivery_runs_once_and_answers_with_the_result(spawn, database_url):
    process = await _serving(spawn, database_url)
    answer = await _deliver(process, "sync", webhook_signatures.headers(SECRET, SYNC, BODY))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "succeeded"
    assert answer.json()["output"]["result"]["echo"] == {"event": "push", "n": 1}
    assert [r["id"] for r in await _webhook_runs(database_url)] == [answer.json()["run_id"]]


async def test_a_signed_asynchronous_delivery_answers_202_with_its_run_id(spawn, database_url):
    process = await _serving(spawn, database_url)
    answer = await _deliver(process, "gh", webhook_signatures.headers(SECRET, GITHUB, BODY))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "running" and answer.json()["replica"] == "daring-duck"

    async def recorded() -> bool:
        """the run finished"""
        return [r["status"] for r in await _webhook_runs(database_url)] == ["succeeded"]

    await harness.wait_for(recorded, within=30)


async def test_a_replayed_delivery_is_refused_and_not_run_again(spawn, database_url):
    process = await _serving(spawn, database_url)
    headers = webhook_signatures.headers(SECRET, SYNC, BODY)
    first = await _deliver(process, "sync", headers)
    replay = await _deliver(process, "sync", headers)
    assert first.status_code == 200, first.text
    assert replay.status_code == 409, replay.text
    message = replay.json()["error"]
    assert headers[webhook_signatures.DELIVERY_HEADER] in message and "already" in message
    assert len(await _webhook_runs(database_url)) == 1


async def test_a_stale_timestamp_is_refused_with_the_server_time(spawn, database_url):
    process = await _serving(spawn, database_url)
    sent = int(time.time()) - 3600
    answer = await _deliver(process, "sync", webhook_signatures.headers(SECRET, SYNC, BODY, timestamp=sent))
    assert answer.status_code == 401, answer.text
    message = answer.json()["error"]
    assert str(sent) in message and "server time" in message
    assert f"{webhook_signatures.DEFAULT_TOLERANCE_SECONDS} s" in message
    server_time = int(message.split("server time ")[1].split(")")[0].split()[0])
    assert abs(server_time - time.time()) < 60
    assert await _webhook_runs(database_url) == []


async def test_a_timestamp_from_the_future_is_refused(spawn, database_url):
    process = await _serving(spawn, database_url)
    sent = int(time.time()) + 3600
    answer = await _deliver(process, "sync", webhook_signatures.headers(SECRET, SYNC, BODY, timestamp=sent))
    assert answer.status_code == 401 and str(sent) in answer.json()["error"]
    assert await _webhook_runs(database_url) == []


async def test_a_signature_made_for_another_path_is_refused_with_the_string_to_sign(spawn, database_url):
    process = await _serving(spawn, database_url)
    headers = webhook_signatures.headers(SECRET, GITHUB, BODY)  # signed for /github ...
    answer = await _deliver(process, "sync", headers)  # ... sent to /sync
    assert answer.status_code == 401, answer.text
    expected = (f"v1:{headers[webhook_signatures.TIMESTAMP_HEADER]}:"
                f"{headers[webhook_signatures.DELIVERY_HEADER]}:{SYNC}:")
    assert expected in answer.json()["error"]
    assert await _webhook_runs(database_url) == []


async def test_the_retired_body_only_signature_is_refused(spawn, database_url):
    process = await _serving(spawn, database_url)
    old = "sha256=" + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    answer = await _deliver(process, "sync", {webhook_signatures.SIGNATURE_HEADER: old,
                                              webhook_signatures.DELIVERY_HEADER: str(uuid.uuid4())})
    assert answer.status_code == 401, answer.text
    assert "sha256=" in answer.json()["error"] and "v1=" in answer.json()["error"]
    # Even with a fresh timestamp: the old value covers the body alone.
    fresh = {**webhook_signatures.headers(SECRET, SYNC, BODY), webhook_signatures.SIGNATURE_HEADER: old}
    assert (await _deliver(process, "sync", fresh)).status_code == 401
    assert await _webhook_runs(database_url) == []


async def test_a_delivery_without_an_id_is_refused(spawn, database_url):
    process = await _serving(spawn, database_url)
    headers = webhook_signatures.headers(SECRET, SYNC, BODY)
    del headers[webhook_signatures.DELIVERY_HEADER]
    answer = await _deliver(process, "sync", headers)
    assert answer.status_code == 401 and webhook_signatures.DELIVERY_HEADER in answer.json()["error"]
    assert await _webhook_runs(database_url) == []


async def test_a_refused_delivery_does_not_use_up_its_id(spawn, database_url):
    """Ids are recorded only once the signature is good: a forger cannot block a real delivery."""
    process = await _serving(spawn, database_url)
    good = webhook_signatures.headers(SECRET, SYNC, BODY)
    forged = {**good, webhook_signatures.SIGNATURE_HEADER: webhook_signatures.signature(
        b"not-the-secret", int(good[webhook_signatures.TIMESTAMP_HEADER]),
        good[webhook_signatures.DELIVERY_HEADER], SYNC, BODY)}
    assert (await _deliver(process, "sync", forged)).status_code == 401
    assert (await _deliver(process, "sync", good)).status_code == 200


async def test_a_delivery_needs_the_replica_token_too(spawn, database_url):
    process = await _serving(spawn, database_url)
    answer = await _deliver(process, "sync", webhook_signatures.headers(SECRET, SYNC, BODY), auth={})
    assert answer.status_code == 401 and "Authorization: Bearer" in answer.json()["error"]
    assert await _webhook_runs(database_url) == []


async def test_a_delivery_beyond_max_concurrent_runs_is_refused_and_may_be_sent_again(spawn, database_url):
    process = await _serving(spawn, database_url, maxConcurrentRuns=1)
    slow = await _deliver(process, "slow", webhook_signatures.headers(
        SECRET, webhook_signatures.hook_path(NAMESPACE, CLUSTER, "/slow"), b'{"seconds": 2}'), b'{"seconds": 2}')
    assert slow.status_code == 202, slow.text
    headers = webhook_signatures.headers(SECRET, SYNC, BODY)
    refused = await _deliver(process, "sync", headers)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 0 and "maxConcurrentRuns" in refused.json()["error"]

    async def accepted_later() -> bool:
        """the same delivery is accepted once the slow run is done"""
        return (await _deliver(process, "sync", headers)).status_code == 200

    await harness.wait_for(accepted_later, within=30, interval=0.5)
    assert len(await _webhook_runs(database_url)) == 2  # the slow one and the retried one


async def test_deliveries_are_refused_while_redis_is_down(spawn, database_url):
    dead_redis = f"redis://127.0.0.1:{ports.free_port()}/0"
    process = await _serving(spawn, database_url, redis=dead_redis)
    answer = await _deliver(process, "sync", webhook_signatures.headers(SECRET, SYNC, BODY))
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0 and "Redis" in answer.json()["error"]
    assert await _webhook_runs(database_url) == []


async def test_an_unknown_webhook_is_404(spawn, database_url):
    process = await _serving(spawn, database_url)
    answer = await _deliver(process, "nope", webhook_signatures.headers(SECRET, SYNC, BODY))
    assert answer.status_code == 404 and "nope" in answer.json()["error"]


async def test_a_webhook_whose_secret_is_not_in_the_environment_answers_503(spawn, database_url):
    process = await _serving(spawn, database_url)
    path = webhook_signatures.hook_path(NAMESPACE, CLUSTER, "/unset")
    answer = await _deliver(process, "unset", webhook_signatures.headers(SECRET, path, BODY))
    assert answer.status_code == 503, answer.text
    assert secret_env.webhook_secret("unset") in answer.json()["error"]
    assert await _webhook_runs(database_url) == []
