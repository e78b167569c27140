"""The gateway writes AgentClusters with its own identity, so it checks for its caller what the
admission webhook checks for everyone else: a tool that would newly reference a Secret needs
the caller's own `get` on that Secret (SubjectAccessReview). The refusal is the same whether the
Secret exists or not, so the gateway is no oracle for Secrets a caller cannot read; and a
tool that sets an image hears the tier's image policy in the admission webhook's words."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e


def _secret(k8s_api: ApiClient, namespace: str, name: str, key: str, value: bytes) -> None:
    client.CoreV1Api(k8s_api).create_namespaced_secret(namespace, {
        "metadata": {"name": name}, "data": {key: base64.b64encode(value).decode()}})


async def test_a_caller_who_may_not_read_a_secret_gets_one_refusal_whether_it_exists_or_not(
        gateway, namespace, token_for, k8s_api):
    _secret(k8s_api, namespace, "team-slack", "url", b"https://hooks.slack.com/services/T/B/secret")
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="agent", namespace=namespace)

        existing = await mcp.error("add_channel", agent_name="agent", channel_name="ops", type="slack",
                                   url_secret_name="team-slack", namespace=namespace)
        missing = await mcp.error("add_channel", agent_name="agent", channel_name="ops", type="slack",
                                  url_secret_name="no-such-secr", namespace=namespace)

        caller = f"system:serviceaccount:{namespace}:mcp-caller"
        assert f'user "{caller}" may not get Secret "team-slack" in namespace "{namespace}"' in existing, existing
        assert "spec.channels[0].urlSecretRef" in existing, existing
        assert f"--serviceaccount={namespace}:mcp-caller" in existing, existing
        assert existing.replace("team-slack", "NAME") == missing.replace("no-such-secr", "NAME")
        assert (await mcp.call("describe_agent", name="agent", namespace=namespace))["channels"] == []


async def test_every_tool_that_references_a_secret_checks_the_caller(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="agent", namespace=namespace)
        await mcp.call("add_function", agent_name="agent", function_name="work",
                       python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
        calls = [
            ("configure_agent_ai", {"provider": "openai", "model": "m", "base_url": "https://attacker.example/v1",
                                    "api_key_secret_name": "llm"}, "spec.ai.apiKeySecretRef"),
            ("add_webhook", {"webhook_name": "gh", "path": "/gh", "function_name": "work", "secret_name": "hook"},
             "spec.webhooks[0].secretRef"),
            ("configure_mcp_servers", {"servers": [{"name": "tools", "url": "https://mcp.example.com/mcp",
                                                    "headers_secret_name": "mcp-auth"}]},
             "spec.mcpServers[0].headersSecretRef"),
        ]
        for tool, arguments, field in calls:
            message = await mcp.error(tool, agent_name="agent", namespace=namespace, **arguments)
            assert "may not get Secret" in message and field in message, (tool, message)
        described = await mcp.call("describe_agent", name="agent", namespace=namespace)
        assert (described["ai"], described["webhooks"], described["mcp_servers"]) == (None, [], [])


async def test_a_caller_who_may_read_the_secret_adds_the_reference(
        gateway, namespace, token_for, k8s_api, grant_secret_read):
    _secret(k8s_api, namespace, "team-slack", "url", b"https://hooks.slack.com/services/T/B/secret")
    token = token_for(namespace)
    grant_secret_read(namespace, "team-slack")
    async with mcpclient.connect(gateway.mcp_url, token) as mcp:
        await mcp.call("make_agent", name="agent", namespace=namespace)

        await mcp.call("add_channel", agent_name="agent", channel_name="ops", type="slack",
                       url_secret_name="team-slack", namespace=namespace)

        assert (await mcp.call("describe_agent", name="agent", namespace=namespace))["channels"] == ["ops"]


async def test_make_agent_with_an_image_the_tier_does_not_allow_says_why(gateway, make_namespace, token_for):
    namespace = make_namespace({constants.LABEL_TIER: "pro"})
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        message = await mcp.error("make_agent", name="agent", image="evil.example/agent:1", namespace=namespace)

    assert f'spec.image "evil.example/agent:1" is not allowed in namespace "{namespace}" (tier pro)' in message, message
    assert "tiers.tiers.pro.allowedImages" in message, message
