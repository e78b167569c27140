"""Chat over the runtime's HTTP endpoint: per-replica memory in PostgreSQL keyed by
conversation id, replies naming the replica, the per-replica system prompt override, and
trimming to the memory budget."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from agent_api import secret_env
from agent_runtime import metrics, server
from devcluster import ports
from tests.integration.runtime import harness
from tests.support.ai_provider import Reply, ScriptedProvider, remembering


@pytest.fixture
async def provider():
    scripted = await ScriptedProvider().start()
    scripted.responder = remembering
    yield scripted
    await scripted.stop()


class ServedReplica:
    """An in-process replica with its real HTTP app on a loopback port."""

    def __init__(self, database_url: str, name: str, runtime_pool: bool = False) -> None:
        self.replica = harness.Replica(database_url, name, runtime_pool=runtime_pool)
        self.port = ports.free_port()
        self._site: web.AppRunner | None = None

    async def start(self) -> ServedReplica:
        await self.replica.start()
        identity = self.replica.runner._identity
        app = server.build_app(identity, metrics.Metrics(identity.namespace, identity.cluster, identity.replica),
                               self.replica.runner, lambda: True)
        self._site = web.AppRunner(app, access_log=None)
        await self._site.setup()
        await web.TCPSite(self._site, "127.0.0.1", self.port).start()
        return self

    async def chat(self, message: str, conversation_id: str | None = None) -> tuple[int, dict]:
        body = {"message": message}
        if conversation_id:
            body["conversation_id"] = conversation_id
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{self.port}/chat", json=body, headers=harness.AUTH) as response:
            return response.status, await response.json()

    async def close(self) -> None:
        await self._site.cleanup()
        await self.replica.close()


def _spec(provider: ScriptedProvider, **limits) -> dict:
    return {"replicas": 2,
            "ai": {"provider": "openai", "model": "scripted", "baseURL": provider.openai_base_url,
                   "systemPrompt": "You are the default variant."},
            "limits": {"leaseSeconds": 5, **limits}}


async def test_same_conversation_on_two_replicas_makes_two_histories(database_url, provider):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, _spec(provider))
    a = await ServedReplica(database_url, "amber-ant").start()
    b = await ServedReplica(database_url, "brave-bee").start()
    try:
        await a.replica.runner.state_store().put("system_prompt", "You are variant A.")
        status, first = await a.chat("apples", "conv-1")
        assert status == 200, first
        assert first == {"reply": "I remember: apples", "replica": "amber-ant",
                         "conversation_id": "conv-1", "run_id": first["run_id"],
                         "stop_reason": "completed"}
        _, other = await b.chat("bananas", "conv-1")
        assert (other["reply"], other["replica"]) == ("I remember: bananas", "brave-bee")
        _, follow_up = await a.chat("and then?", "conv-1")
        assert follow_up["reply"] == "I remember: apples | and then?"
        _, fresh = await a.chat("hello")
        assert fresh["conversation_id"] not in ("", "conv-1") and fresh["reply"] == "I remember: hello"
    finally:
        await a.close()
        await b.close()
    systems = [r.system() for r in provider.requests]
    assert systems == ["You are variant A.", "You are the default variant.",
                       "You are variant A.", "You are variant A."]
    turns = await harness.fetch(database_url, "SELECT replica, role, content FROM conversation_turns "
                                              "WHERE conversation_id = 'conv-1' ORDER BY id")
    assert [(t["replica"], t["role"], t["content"]) for t in turns] == [
        ("amber-ant", "user", "apples"), ("amber-ant", "assistant", "I remember: apples"),
        ("brave-bee", "user", "bananas"), ("brave-bee", "assistant", "I remember: bananas"),
        ("amber-ant", "user", "and then?"),
        ("amber-ant", "assistant", "I remember: apples | and then?")]
    runs = await harness.fetch(database_url, "SELECT replica, trigger, stop_reason FROM runs")
    assert {(r["replica"], r["trigger"], r["stop_reason"]) for r in runs} == {
        ("amber-ant", "chat", "completed"), ("brave-bee", "chat", "completed")}


async def test_memory_is_trimmed_to_the_budget_keeping_the_newest_turns(database_url, provider):
    provider.responder = lambda r: Reply(text=f"ok {len(r.texts('user'))}")
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, _spec(provider, memoryMaxTokens=100))
    a = await ServedReplica(database_url, "amber-ant").start()
    try:
        for n in range(8):
            status, _ = await a.chat(f"message {n} " + "x" * 100, "long")
            assert status == 200
    finally:
        await a.close()
    turns = await harness.fetch(database_url, "SELECT content, tokens FROM conversation_turns "
                                              "ORDER BY id")
    assert sum(t["tokens"] for t in turns) <= 100
    assert turns[-1]["content"].startswith("ok ") and turns[-2]["content"].startswith("message 7 ")
    assert not any(t["content"].startswith("message 0 ") for t in turns)
    last_sent = provider.requests[-1].texts("user")
    assert last_sent[-1].startswith("message 7 ") and len(last_sent) < 8


async def test_chat_bad_requests_and_missing_ai(database_url, provider):
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, {"replicas": 1})
    a = await ServedReplica(database_url, "amber-ant").start()
    try:
        status, body = await a.chat("")
        assert status == 400 and "message" in body["error"]
        status, body = await a.chat("hello")
        assert status == 503 and body == {"error": "this agent has no AI engine: spec.ai is not set",
                                          "replica": "amber-ant"}
    finally:
        await a.close()


async def test_a_secret_quoted_in_chat_is_not_stored_in_memory_or_runs(database_url, provider,
                                                                       monkeypatch):
    key = "sk-chat-secret-0123456789abcdef"
    monkeypatch.setenv(secret_env.AI_API_KEY, key)
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, _spec(provider))
    a = await ServedReplica(database_url, "amber-ant").start()
    try:
        status, body = await a.chat(f"my key is {key}", "leak")
    finally:
        await a.close()
    assert status == 200 and key not in body["reply"]
    assert body["reply"] == "I remember: my key is [redacted:AGENT_AI_API_KEY]"
    for table in ("conversation_turns", "runs"):
        rows = await harness.fetch(database_url, f"SELECT * FROM {table}")
        assert rows and all(key not in str(dict(row)) for row in rows)


async def test_an_exchange_larger_than_the_budget_keeps_only_the_reply_that_fits(database_url, provider):
    # The trim shares one statement with the insert (FinishChatTurn): a new turn that alone
    # is past the budget is not stored, and the older turns go, as a trim after the insert did.
    provider.responder = lambda r: Reply(text="short answer")
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, _spec(provider, memoryMaxTokens=100))
    a = await ServedReplica(database_url, "amber-ant").start()
    try:
        assert (await a.chat("first", "big"))[0] == 200
        assert (await a.chat("y" * 1000, "big"))[0] == 200
    finally:
        await a.close()
    turns = await harness.fetch(database_url, "SELECT role, content FROM conversation_turns ORDER BY id")
    assert [(t["role"], t["content"]) for t in turns] == [("assistant", "short answer")]
