"""Refusals through MCP, each with a message a person can act on and a code a program can act
on: the quota refusal in the admission webhook's own words, unknown agents, bad cron, bad
inputs of every tool, an agent with no ready replica yet."""

from __future__ import annotations

import pytest

from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e


async def test_quota_refusal_comes_through_verbatim(gateway, make_namespace, token_for):
    free = make_namespace({"agentclusters.io/tier": "free"})  # 2 slots
    async with mcpclient.connect(gateway.mcp_url, token_for(free)) as mcp:
        await mcp.call("make_agent", name="small", namespace=free)
        refused = await mcp.refusal("scale_agent", name="small", replicas=3, namespace=free)
        assert f'namespace "{free}" (tier free) has 2 agent slots, 0 used by other clusters; 3 requested' \
            in str(refused), refused
        assert refused.code == "forbidden", refused.structured


async def test_a_chat_before_any_replica_is_ready_is_unavailable_for_now(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="newborn", ai_provider="echo", namespace=namespace)
        # make_agent answers at once; the replica's pod takes seconds to start and register.
        refused = await mcp.refusal("chat_with_agent", name="newborn", message="hi", namespace=namespace)
    assert "has no ready replica yet" in str(refused), refused
    assert refused.code == "unavailable", refused.structured
    assert refused.structured["retry_after_seconds"] > 0, refused.structured


async def test_every_tool_refuses_bad_input_with_a_clear_message_and_a_code(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="agent", namespace=namespace)
        await mcp.call("add_function", agent_name="agent", function_name="work",
                       python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
        ns = {"namespace": namespace}
        unknown = f'no agent named "ghost" in namespace "{namespace}"; agents there: agent'
        cases = [  # tool, arguments, the message says, the code
            ("make_agent", {"name": "Bad_Name"}, "must be a DNS label of at most 41", "invalid"),
            ("make_agent", {"name": "agent"}, 'an agent named "agent" already exists', "conflict"),
            ("make_agent", {"name": "x", "ai_provider": "openai"}, "ai.model is required unless ai.provider is echo",
             "invalid"),
            ("scale_agent", {"name": "agent", "replicas": 101}, "less than or equal to 100", "invalid"),
            ("scale_agent", {"name": "ghost", "replicas": 1}, unknown, "not_found"),
            ("list_agents", {"namespace": "Not A Namespace!"}, "forbidden", "forbidden"),
            ("describe_agent", {"name": "ghost"}, unknown, "not_found"),
            ("destroy_agent", {"name": "agent", "confirm": False}, "call again with confirm=true", "invalid"),
            ("add_schedule", {"agent_name": "agent", "function_name": "work", "cron_expression": "61 * * * *"},
             "'61 * * * *' is not a valid cron expression", "invalid"),
            ("add_schedule", {"agent_name": "agent", "function_name": "work", "cron_expression": "* * * * *",
                              "timezone": "Moon/Base"}, "unknown time zone 'Moon/Base'", "invalid"),
            ("add_schedule", {"agent_name": "agent", "function_name": "work", "cron_expression": "* * * * *",
                              "schedule_mode": "everywhere"}, "Input should be 'single' or 'cluster'", "invalid"),
            ("add_schedule", {"agent_name": "agent", "function_name": "nope", "cron_expression": "* * * * *"},
             'has no function named "nope" (defined: work)', "not_found"),
            ("remove_schedule", {"agent_name": "agent", "schedule_name": "never"}, 'has no schedule named "never"',
             "not_found"),
            ("list_schedules", {"agent_name": "ghost"}, unknown, "not_found"),
            ("chat_with_agent", {"name": "agent", "message": "hi", "replica": "nobody-here"},
             'has no replica named "nobody-here"', "not_found"),
            ("chat_with_agent", {"name": "agent", "message": ""}, "at least 1 character", "invalid"),
            ("set_agent_state", {"agent_name": "agent", "key": "k", "value": 1, "replica": "nobody-here"},
             'has no replica named "nobody-here"', "not_found"),
            ("get_agent_state", {"agent_name": "ghost", "key": "k"}, unknown, "not_found"),
            ("list_agent_state_keys", {"agent_name": "agent", "replica": "nobody-here"}, "no replica named",
             "not_found"),
            ("delete_agent_state", {"agent_name": "agent", "key": "never-set"}, "has no key 'never-set'", "not_found"),
            ("list_runs", {"agent_name": "agent", "limit": 0}, "greater than or equal to 1", "invalid"),
            ("run_function", {"name": "agent", "function": "never"}, 'has no function named "never"', "not_found"),
            ("get_run", {"name": "agent", "run_id": 0}, "greater than or equal to 1", "invalid"),
            ("add_function", {"agent_name": "agent", "function_name": "two", "python_entrypoint": "a:b",
                              "http_url": "https://example.com"}, "exactly one of http, python or prompt", "invalid"),
            ("add_function", {"agent_name": "agent", "function_name": "bad", "python_entrypoint": "not an entrypoint"},
             "must look like module:callable", "invalid"),
            ("remove_function", {"agent_name": "agent", "function_name": "never"}, 'has no function named "never"',
             "not_found"),
            ("configure_agent_ai", {"agent_name": "agent", "provider": "anthropic", "model": "claude"},
             "ai.apiKeySecretRef is required when ai.provider is anthropic", "invalid"),
            ("add_webhook", {"agent_name": "agent", "webhook_name": "w", "path": "/x", "function_name": "work",
                             "secret_name": "absent"}, 'may not get Secret "absent"', "forbidden"),
            ("remove_webhook", {"agent_name": "agent", "webhook_name": "w"}, 'has no webhook named "w"', "not_found"),
            ("add_channel", {"agent_name": "agent", "channel_name": "c", "type": "slack", "url_secret_name": "absent"},
             'may not get Secret "absent"', "forbidden"),
            ("remove_channel", {"agent_name": "agent", "channel_name": "c"}, 'has no channel named "c"', "not_found"),
            ("configure_mcp_servers", {"agent_name": "agent", "servers": [{"name": "s", "url": "ftp://x"}]},
             "must be an http:// or https:// URL", "invalid"),
            ("configure_orchestration_limits", {"agent_name": "agent"}, "give at least one limit", "invalid"),
            ("configure_orchestration_limits", {"agent_name": "agent", "max_concurrent_runs": 0},
             "greater than or equal to 1", "invalid"),
        ]
        for tool, arguments, expected, code in cases:
            refused = await mcp.refusal(tool, **{**ns, **arguments})
            message = str(refused)
            assert expected in message, (tool, arguments, message)
            assert "Traceback" not in message
            # The program reads the code; the person reads the same sentence beside it.
            assert refused.code == code, (tool, arguments, refused.structured)
            assert expected in refused.structured["message"], (tool, arguments, refused.structured)


async def test_an_unknown_tool_is_not_found(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        refused = await mcp.refusal("summon_agent", name="agent", namespace=namespace)
    assert "Unknown tool: summon_agent" in str(refused)
    assert refused.code == "not_found", refused.structured
