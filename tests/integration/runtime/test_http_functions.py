"""`http` functions as their target sees them, through an outside recorder: the method, the
headers whose values come from Secrets (in the pod's environment, `agent_api.secret_env`), and
a body that carries the replica's own state, so two replicas watching two sources each send
their own cursor."""

from __future__ import annotations

import asyncpg
import pytest

from agent_api import models, secret_env
from agent_runtime import state
from tests.integration.runtime import harness
from tests.support.recorder import Recorder

TOKEN = "s3cret-token-for-the-recorder"
FUNCTION = "sources.watch"
HEADER = "X-Api-Token"


@pytest.fixture
def recorder():
    started = Recorder().start()
    yield started
    started.stop()


def _watching_spec(recorder: Recorder, **http: object) -> dict:
    """Every replica runs the function every second (cluster mode), so each sends its own state."""
    function = recorder.function(FUNCTION, method="PUT", headers=[
        {"name": HEADER, "secretKeyRef": {"name": "source-api", "key": "token"}}], **http)
    return harness.spec_with([function], [harness.schedule("watch", FUNCTION, mode="cluster")])


async def _set_state(database_url: str, replica: str, values: dict) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        store = state.StateStore(pool, harness.NAMESPACE, harness.CLUSTER, replica, 64 * 1024, 1024 * 1024)
        for key, value in values.items():
            await store.put(key, value)
    finally:
        await pool.close()


async def _two_replicas_watching(database_url: str, spawn, recorder: Recorder, spec: dict) -> None:
    await harness.migrated(database_url)
    models.AgentClusterSpec.model_validate(spec)  # what the API server would accept
    await harness.write_spec(database_url, 1, spec)
    for replica, source in (("r0", "alpha"), ("r1", "beta")):
        await _set_state(database_url, replica, {"source": source, "cursor": f"{source}-42",
                                                 "notes": "x" * 100})
    header_variable = secret_env.http_header(FUNCTION, HEADER)
    for replica in ("r0", "r1"):
        spawn(replica, database_url, **{header_variable: TOKEN})

    async def both_replicas_called():
        """the recorder saw a call from each replica"""
        return {e.replica for e in recorder.executions()} >= {"r0", "r1"}

    await harness.wait_for(both_replicas_called, within=60, interval=0.2)


async def test_an_http_function_uses_its_method(database_url, spawn, recorder):
    await _two_replicas_watching(database_url, spawn, recorder, _watching_spec(recorder))

    assert {e.method for e in recorder.executions()} == {"PUT"}, recorder.describe()


async def test_an_http_function_sends_its_headers_from_secrets(database_url, spawn, recorder):
    await _two_replicas_watching(database_url, spawn, recorder, _watching_spec(recorder))

    assert {e.headers.get(HEADER) for e in recorder.executions()} == {TOKEN}


async def test_each_replica_sends_its_own_state(database_url, spawn, recorder):
    await _two_replicas_watching(database_url, spawn, recorder, _watching_spec(recorder))

    sent = {e.replica: e.body["state"] for e in recorder.executions() if e.replica in ("r0", "r1")}
    assert sent == {"r0": {"source": "alpha", "cursor": "alpha-42", "notes": "x" * 100},
                    "r1": {"source": "beta", "cursor": "beta-42", "notes": "x" * 100}}


async def test_state_keys_limit_the_state_sent_to_those_keys(database_url, spawn, recorder):
    spec = _watching_spec(recorder, stateKeys=["source", "cursor", "absent"])
    await _two_replicas_watching(database_url, spawn, recorder, spec)

    sent = {e.replica: e.body["state"] for e in recorder.executions() if e.replica in ("r0", "r1")}
    assert sent == {"r0": {"source": "alpha", "cursor": "alpha-42"},
                    "r1": {"source": "beta", "cursor": "beta-42"}}
