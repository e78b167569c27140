"""Refusals through MCP, each with a message a person can act on: the quota refusal in the
admission webhook's own words, unknown agents, bad cron, bad inputs of every tool."""

from __future__ import annotations

import pytest

from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e


async def test_quota_refusal_comes_through_verbatim(gateway, make_namespace, token_for):
    free = make_namespace({"agentclusters.io/tier": "free"})  # 2 slots
    async with mcpclient.connect(gateway.mcp_url, token_for(free)) as mcp:
        await mcp.call("make_agent", name="small", namespace=free)
        refused = await mcp.error("scale_agent", name="small", replicas=3, namespace=free)
        assert f'namespace "{free}" (tier free) has 2 agent slots, 0 used by other clusters; 3 requested' \
            in refused, refused


async def test_every_tool_refuses_bad_input_with_a_clear_message(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="agent", namespace=namespace)
        await mcp.call("add_function", agent_name="agent", function_name="work",
                       python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
        ns = {"namespace": namespace}
        unknown = f'no agent named "ghost" in namespace "{namespace}"; agents there: agent'
        cases = [
            ("make_agent", {"name": "Bad_Name"}, "must be a DNS label of at most 41"),
            ("make_agent", {"name": "agent"}, 'an agent named "agent" already exists'),
            ("make_agent", {"name": "x", "ai_provider": "openai"}, "ai.model is required unless ai.provider is echo"),
            ("scale_agent", {"name": "agent", "replicas": 101}, "less than or equal to 100"),
            ("scale_agent", {"name": "ghost", "replicas": 1}, unknown),
            ("list_agents", {"namespace": "Not A Namespace!"}, "forbidden"),
            ("describe_agent", {"name": "ghost"}, unknown),
            ("destroy_agent", {"name": "agent", "confirm": False}, "call again with confirm=true"),
            ("add_schedule", {"agent_name": "agent", "function_name": "work", "cron_expression": "61 * * * *"},
             "'61 * * * *' is not a valid cron expression"),
            ("add_schedule", {"agent_name": "agent", "function_name": "work", "cron_expression": "* * * * *",
                              "timezone": "Moon/Base"}, "unknown time zone 'Moon/Base'"),
            ("add_schedule", {"agent_name": "agent", "function_name": "work", "cron_expression": "* * * * *",
                              "schedule_mode": "everywhere"}, "Input should be 'single' or 'cluster'"),
            ("add_schedule", {"agent_name": "agent", "function_name": "nope", "cron_expression": "* * * * *"},
             'has no function named "nope" (defined: work)'),
            ("remove_schedule", {"agent_name": "agent", "schedule_name": "never"}, 'has no schedule named "never"'),
            ("list_schedules", {"agent_name": "ghost"}, unknown),
            ("chat_with_agent", {"name": "agent", "message": "hi", "replica": "nobody-here"},
             'has no replica named "nobody-here"'),
            ("chat_with_agent", {"name": "agent", "message": ""}, "at least 1 character"),
            ("set_agent_state", {"agent_name": "agent", "key": "k", "value": 1, "replica": "nobody-here"},
             'has no replica named "nobody-here"'),
            ("get_agent_state", {"agent_name": "ghost", "key": "k"}, unknown),
            ("list_agent_state_keys", {"agent_name": "agent", "replica": "nobody-here"}, "no replica named"),
            ("delete_agent_state", {"agent_name": "agent", "key": "never-set"}, "has no key 'never-set'"),
            ("list_runs", {"agent_name": "agent", "limit": 0}, "greater than or equal to 1"),
            ("add_function", {"agent_name": "agent", "function_name": "two", "python_entrypoint": "a:b",
                              "http_url": "https://example.com"}, "exactly one of http, python or prompt"),
            ("add_function", {"agent_name": "agent", "function_name": "bad", "python_entrypoint": "not an entrypoint"},
             "must look like module:callable"),
            ("remove_function", {"agent_name": "agent", "function_name": "never"}, 'has no function named "never"'),
            ("configure_agent_ai", {"agent_name": "agent", "provider": "anthropic", "model": "claude"},
             "ai.apiKeySecretRef is required when ai.provider is anthropic"),
            ("add_webhook", {"agent_name": "agent", "webhook_name": "w", "path": "/x", "function_name": "work",
                             "secret_name": "absent"}, 'may not get Secret "absent"'),
            ("remove_webhook", {"agent_name": "agent", "webhook_name": "w"}, 'has no webhook named "w"'),
            ("add_channel", {"agent_name": "agent", "channel_name": "c", "type": "slack", "url_secret_name": "absent"},
             'may not get Secret "absent"'),
            ("remove_channel", {"agent_name": "agent", "channel_name": "c"}, 'has no channel named "c"'),
            ("configure_mcp_servers", {"agent_name": "agent", "servers": [{"name": "s", "url": "ftp://x"}]},
             "must be an http:// or https:// URL"),
            ("configure_orchestration_limits", {"agent_name": "agent"}, "give at least one limit"),
            ("configure_orchestration_limits", {"agent_name": "agent", "max_concurrent_runs": 0},
             "greater than or equal to 1"),
        ]
        for tool, arguments, expected in cases:
            message = await mcp.error(tool, **{**ns, **arguments})
            assert expected in message, (tool, arguments, message)
            assert "Traceback" not in message
