"""A scheduled `prompt` function through the real runtime process: the fire is claimed, the
agent loop calls an MCP tool (real MCP server, streamable HTTP) and state tools, posts to a
channel (local sink), and the run is recorded with its stop reason. No secret value (API key,
channel URL, MCP header) appears in the process's log or in any stored row."""

from __future__ import annotations

import json
import uuid

from agent_api import secret_env
from devcluster import ports
from tests.integration.runtime import harness
from tests.support.ai_provider import Reply, Request, ScriptedProvider
from tests.support.mcp_server import LoopbackMcpServer
from tests.support.sink import Sink

FUNCTION = "report.prices"


def _responder(request: Request) -> Reply:
    """A model that looks a price up, remembers it, posts it, and answers."""
    done = request.tool_results()
    if done == 0:
        return Reply(tool_calls=[("catalogue__lookup_price", {"item": "widget"}),
                                 ("state_get", {"key": "last_price"})])
    if done == 2:
        looked_up = json.loads(next(m["content"] for m in request.messages() if m["role"] == "tool"))
        price = looked_up["price"]
        return Reply(tool_calls=[("state_set", {"key": "last_price", "value": price}),
                                 ("send_to_channel", {"channel": "ops",
                                                      "text": f"widget costs {price}"})])
    return Reply(text="posted the price of widget")


async def _all_rows(database_url: str) -> str:
    tables = ["runs", "agent_state", "channel_deliveries", "conversation_turns", "fires",
              "cluster_configs", "schedule_lanes"]
    dumped = []
    for table in tables:
        rows = await harness.fetch(database_url, f"SELECT * FROM {table}")
        dumped += [json.dumps(dict(row), default=str) for row in rows]
    return "\n".join(dumped)


async def test_scheduled_prompt_calls_mcp_and_state_tools_and_posts_to_a_channel(
        database_url, redis_url, tmp_path, monkeypatch):
    api_key = f"sk-itest-{uuid.uuid4().hex}"
    channel_path = f"/services/T0001/B0002/{uuid.uuid4().hex}"
    mcp_token = f"Bearer mcp-{uuid.uuid4().hex}"
    provider = await ScriptedProvider(expected_key=api_key).start()
    provider.responder = _responder
    mcp = await LoopbackMcpServer({"widget": 9.5}).start()
    sink = await Sink().start()
    channel_url = sink.url(channel_path)
    monkeypatch.setenv(secret_env.AI_API_KEY, api_key)
    monkeypatch.setenv(secret_env.channel_url("ops"), channel_url)
    monkeypatch.setenv(secret_env.mcp_header_prefix("catalogue") + "Authorization", mcp_token)
    await harness.migrated(database_url)
    await harness.write_spec(database_url, 1, {
        "replicas": 1,
        "ai": {"provider": "openai", "model": "scripted", "baseURL": provider.openai_base_url,
               "apiKeySecretRef": {"name": "llm", "key": "api-key"},
               "systemPrompt": "You report prices."},
        "functions": [{"name": FUNCTION,
                       "prompt": {"template": "Look up {{ item }} and post it to {{ channel }}."}}],
        "schedules": [harness.schedule("prices", FUNCTION, "* * * * * *",
                                       payload={"item": "widget", "channel": "ops"})],
        "channels": [{"name": "ops", "type": "slack",
                      "urlSecretRef": {"name": "slack", "key": "url"}}],
        "mcpServers": [{"name": "catalogue", "url": mcp.url,
                        "headersSecretRef": {"name": "catalogue-mcp"}}],
        "limits": {"leaseSeconds": 5},
    })
    process = harness.RuntimeProcess(database_url, redis_url, "daring-duck", "127.0.0.1",
                                     ports.free_port(), tmp_path)
    try:
        async def a_run_finished() -> bool:
            """a scheduled prompt run finished"""
            rows = await harness.fetch(database_url,
                                       "SELECT 1 FROM runs WHERE status <> 'running' LIMIT 1")
            return bool(rows)

        try:
            await harness.wait_for(a_run_finished, within=60)
        except AssertionError:
            raise AssertionError(process.log()) from None
        process.signal(15)
        assert await process.wait() == 0
    finally:
        process.kill()
        await provider.stop()
        await mcp.stop()
        await sink.stop()

    run = (await harness.fetch(database_url, "SELECT * FROM runs ORDER BY id LIMIT 1"))[0]
    assert (run["status"], run["stop_reason"], run["trigger"], run["function"]) == (
        "succeeded", "completed", "schedule", FUNCTION), run["error"]
    output = json.loads(run["output"])
    assert output["reply"] == "posted the price of widget"
    assert output["tools_called"] == ["catalogue__lookup_price", "state_get", "state_set",
                                      "send_to_channel"]
    assert output["iterations"] == 3 and output["function_calls"] == 4
    state = await harness.fetch(database_url, "SELECT replica, value FROM agent_state "
                                              "WHERE key = 'last_price'")
    assert [(s["replica"], json.loads(s["value"])) for s in state] == [("daring-duck", 9.5)]
    assert sink.received[0].path == channel_path
    assert sink.received[0].body == {"text": "widget costs 9.5"}
    delivery = (await harness.fetch(database_url, "SELECT * FROM channel_deliveries ORDER BY id"))[0]
    assert (delivery["channel"], delivery["status"], delivery["attempts"], delivery["run_id"]) == (
        "ops", "delivered", 1, run["id"])
    assert any(h.get("authorization") == mcp_token for h in mcp.seen_headers)
    first = provider.requests[0]
    assert first.system() == "You report prices."
    assert first.texts("user") == ["Look up widget and post it to ops."]
    assert {t["function"]["name"] for t in first.body["tools"]} >= {
        "catalogue__lookup_price", "state_get", "state_set", "state_list", "send_to_channel"}

    log = process.log()
    stored = await _all_rows(database_url)
    assert "runtime started" in log
    for secret in (api_key, channel_url, channel_path, mcp_token, mcp_token.split()[1]):
        assert secret not in log, secret
        assert secret not in stored, secret
