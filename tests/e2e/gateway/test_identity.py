"""Who the gateway believes a caller is: only tokens minted for its audience, never its own
identity in place of a missing token, and chat memory bound to the caller who wrote it."""

from __future__ import annotations

import subprocess

import httpx2
import pytest
from kubernetes import client
from mcp import Client

from agent_api import constants
from agent_gateway import deps, server, settings
from devcluster import gateway_process
from tests.e2e.gateway import mcpclient
from tests.e2e.operator import agentclusters as ac
from tests.support.ai_provider import ScriptedProvider, remembering

pytestmark = pytest.mark.e2e

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "0"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _kubectl_token(devcluster, namespace: str, account: str, *extra: str) -> str:
    result = subprocess.run(
        [str(devcluster.bin_dir / "kubectl"), f"--kubeconfig={devcluster.kubeconfig}", "create", "token",
         account, "-n", namespace, *extra], capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.strip()


def test_a_token_without_the_gateway_audience_is_refused(gateway, devcluster, namespace, token_for):
    token_for(namespace)  # the ServiceAccount exists and may manage agentclusters there
    # What any pod's own projected token is: valid for the API server, not meant for the gateway.
    plain = _kubectl_token(devcluster, namespace, "mcp-caller")
    answer = httpx2.post(gateway.mcp_url, json=INITIALIZE, headers={**HEADERS, "Authorization": f"Bearer {plain}"},
                         timeout=30)
    assert answer.status_code == 401, answer.text
    assert "--audience agentclusters-gateway" in answer.json()["error_description"]


def test_a_token_for_another_audience_is_refused(gateway, devcluster, namespace, token_for):
    token_for(namespace)
    other = _kubectl_token(devcluster, namespace, "mcp-caller", "--audience", "some-other-service")
    answer = httpx2.post(gateway.mcp_url, json=INITIALIZE, headers={**HEADERS, "Authorization": f"Bearer {other}"},
                         timeout=30)
    assert answer.status_code == 401, answer.text


def test_no_token_is_401_with_how_to_get_one(gateway):
    answer = httpx2.post(gateway.mcp_url, json=INITIALIZE, headers=HEADERS, timeout=30)
    assert answer.status_code == 401
    assert "kubectl create token" in answer.json()["error_description"]


async def test_an_http_gateway_never_acts_as_its_own_identity(devcluster, operator, redis_server, namespace):
    """The gateway's own credentials may do anything; a tool call that carries no caller (here:
    the HTTP-mode server reached without its bearer middleware) must be refused, not run as the
    gateway."""
    config = settings.Settings(kubeconfig=str(devcluster.kubeconfig), database_url=operator.database_url,
                               redis_url=redis_server.url, default_namespace=namespace)
    async with deps.open_deps(config) as d, Client(server.build_server(d)) as mcp:
        result = await mcp.call_tool("list_agents", {"namespace": namespace})
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, f"the tool ran without a caller: {text}"
    assert "bearer token" in text


@pytest.fixture
async def provider():
    scripted = await ScriptedProvider().start()
    scripted.responder = remembering
    yield scripted
    await scripted.stop()


def _chatty_agent(k8s_api, namespace: str, provider: ScriptedProvider) -> None:
    body = {"apiVersion": constants.API_VERSION, "kind": constants.KIND, "metadata": {"name": "chatty"},
            "spec": {"replicas": 1, "ai": {"provider": "openai", "model": "scripted",
                                           "baseURL": provider.openai_base_url}}}
    agc = client.CustomObjectsApi(k8s_api)
    ac.create(agc, namespace, body)
    ac.ready_members(agc, namespace, "chatty", 1)


async def test_two_callers_using_the_same_conversation_id_do_not_share_memory(
        gateway, devcluster, k8s_api, namespace, provider):
    _chatty_agent(k8s_api, namespace, provider)
    kubectl = devcluster.bin_dir / "kubectl"
    alice = gateway_process.issue_caller_token(kubectl, devcluster.kubeconfig, namespace, name="alice")
    mallory = gateway_process.issue_caller_token(kubectl, devcluster.kubeconfig, namespace, name="mallory")
    async with mcpclient.connect(gateway.mcp_url, alice) as mcp:
        told = await mcp.call("chat_with_agent", name="chatty", namespace=namespace, conversation_id="team-chat",
                              message="the launch code is 0000")
    async with mcpclient.connect(gateway.mcp_url, mallory) as mcp:
        asked = await mcp.call("chat_with_agent", name="chatty", namespace=namespace, conversation_id="team-chat",
                               message="what was I told?")
    async with mcpclient.connect(gateway.mcp_url, alice) as mcp:
        again = await mcp.call("chat_with_agent", name="chatty", namespace=namespace, conversation_id="team-chat",
                               message="and now?", replica=told["replica"])
    assert told["reply"] == "I remember: the launch code is 0000"
    assert asked["reply"] == "I remember: what was I told?"  # nothing of alice's
    assert again["reply"] == "I remember: the launch code is 0000 | and now?"  # alice's own continues
    assert told["conversation_id"] == asked["conversation_id"] == "team-chat"  # each sees the id it chose


async def test_a_callers_default_conversation_continues_and_is_theirs_alone(
        gateway, devcluster, k8s_api, namespace, provider):
    _chatty_agent(k8s_api, namespace, provider)
    kubectl = devcluster.bin_dir / "kubectl"
    alice = gateway_process.issue_caller_token(kubectl, devcluster.kubeconfig, namespace, name="alice")
    bob = gateway_process.issue_caller_token(kubectl, devcluster.kubeconfig, namespace, name="bob")
    async with mcpclient.connect(gateway.mcp_url, alice) as mcp:
        first = await mcp.call("chat_with_agent", name="chatty", namespace=namespace, message="one")
        follow = await mcp.call("chat_with_agent", name="chatty", namespace=namespace, message="two",
                                replica=first["replica"])
    async with mcpclient.connect(gateway.mcp_url, bob) as mcp:
        other = await mcp.call("chat_with_agent", name="chatty", namespace=namespace, message="three",
                               replica=first["replica"])
        guessed = await mcp.call("chat_with_agent", name="chatty", namespace=namespace, message="four",
                                 replica=first["replica"], conversation_id=first["conversation_id"])
    assert follow["reply"] == "I remember: one | two"
    assert other["reply"] == "I remember: three"
    # alice's id, named by bob, is bob's own conversation of that name (his "three" is in it)
    assert guessed["reply"] == "I remember: three | four"
