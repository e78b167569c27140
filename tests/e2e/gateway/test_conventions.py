"""MCP's conventions, as a client sees them: tool annotations that tell the truth, and progress
notifications while a chat turn runs."""

from __future__ import annotations

import pytest
from kubernetes import client

from agent_api import constants
from tests.e2e.gateway import mcpclient
from tests.e2e.operator import agentclusters as ac
from tests.support.ai_provider import Reply, ScriptedProvider

pytestmark = pytest.mark.e2e

# tool: (readOnlyHint, destructiveHint, idempotentHint, openWorldHint), and why.
# destructive: the tool may remove or overwrite something (MCP: "false: only additive updates").
# idempotent: the same call again has no further effect on the agent.
# open world: the call reaches outside the cluster (the agent's model, its functions' endpoints).
READ = (True, False, True, False)
ANNOTATIONS = {
    "list_agents": READ,
    "describe_agent": READ,
    "list_archived_replicas": READ,
    "list_schedules": READ,
    "get_agent_state": READ,
    "list_agent_state_keys": READ,
    "list_runs": READ,
    "get_run": READ,
    "make_agent": (False, False, False, False),  # adds; a second call is refused (exists)
    "scale_agent": (False, True, True, False),  # scale-down deletes replicas; the same count again: no change
    "destroy_agent": (False, True, True, False),
    "add_schedule": (False, False, False, False),  # a second call adds another schedule
    "remove_schedule": (False, True, True, False),
    "add_function": (False, False, False, False),
    "remove_function": (False, True, True, False),
    "add_webhook": (False, False, False, False),
    "remove_webhook": (False, True, True, False),
    "add_channel": (False, False, False, False),
    "remove_channel": (False, True, True, False),
    "configure_agent_ai": (False, True, True, False),  # replaces the AI settings
    "configure_mcp_servers": (False, True, True, False),  # replaces the list
    "configure_orchestration_limits": (False, True, True, False),  # overwrites the given limits
    "set_agent_state": (False, True, True, False),  # overwrites the key's value
    "delete_agent_state": (False, True, True, False),
    "chat_with_agent": (False, False, False, True),  # the agent's model answers; memory grows
    "run_function": (False, False, False, True),  # each call is a new run of the agent's code
}


async def test_every_tool_is_annotated_as_the_table_says(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        tools = (await mcp.client.list_tools()).tools
    seen = {}
    for tool in tools:
        hints = tool.annotations
        assert hints is not None, f"{tool.name} has no annotations"
        seen[tool.name] = (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint,
                           hints.open_world_hint)
    missing = sorted(set(seen) - set(ANNOTATIONS))
    assert not missing, f"tools not in this test's table (add a row saying what each does): {missing}"
    assert seen == {name: hints for name, hints in ANNOTATIONS.items() if name in seen}
    assert set(ANNOTATIONS) <= set(seen), sorted(set(ANNOTATIONS) - set(seen))


@pytest.fixture
async def slow_model():
    scripted = await ScriptedProvider().start()
    scripted.responder = lambda _request: Reply(text="thought about it", delay=5.0)
    yield scripted
    await scripted.stop()


# Both protocol eras: the SDK serves each on a request path of its own (2026-07-28: one
# exchange per POST; 2025: the handshake era's transport), and both must stream progress.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_slow_chat_turn_reports_progress_until_it_answers(gateway, k8s_api, namespace, token_for,
                                                                   slow_model, mode):
    agc = client.CustomObjectsApi(k8s_api)
    ac.create(agc, namespace, {
        "apiVersion": constants.API_VERSION, "kind": constants.KIND, "metadata": {"name": "slow"},
        "spec": {"replicas": 1, "ai": {"provider": "openai", "model": "scripted",
                                       "baseURL": slow_model.openai_base_url}}})
    ac.ready_members(agc, namespace, "slow", 1)
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace), mode=mode) as mcp:
        answer = await mcp.call("chat_with_agent", name="slow", message="take your time", namespace=namespace)
        progress = list(mcp.progress)
    assert answer["reply"] == "thought about it"
    messages = [message or "" for _, _, message in progress]
    values = [value for value, _, _ in progress]
    assert values == sorted(values) and len(set(values)) == len(values), progress  # strictly increasing
    assert messages[0].startswith(f"sent to replica {answer['replica']}"), messages
    # The model takes 5 s: the gateway says it is still waiting at least twice meanwhile.
    waiting = [m for m in messages if m.startswith(f"waiting on replica {answer['replica']}")]
    assert len(waiting) >= 2, messages
    assert messages[-1].startswith(f"replica {answer['replica']} answered"), messages
