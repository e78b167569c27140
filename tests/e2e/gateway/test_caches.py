"""The gateway's hot path from memory: AgentClusters and replica pods from watch-fed caches, the
replica registry mirrored from Redis, the rate limit counted locally and synchronised in batches.

What a cache must not change: a chat makes no API-server read once warm, yet a change made
outside the gateway (kubectl, GitOps) is served by the next request after the watch delivers
it, a deleted agent is answered not-found, a replica scaled away stops receiving traffic within
the registry TTL, the gateway is not ready until its caches have synced, and two gateway
processes still share a caller's rate limit (within the batch bound, agent_gateway/ratelimit.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx2
import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from devcluster import gateway_process
from tests.e2e.gateway import mcpclient
from tests.e2e.helpers import eventually_async

pytestmark = pytest.mark.e2e
G, V, P = constants.GROUP, constants.VERSION, constants.PLURAL


def apiserver_requests(api: ApiClient, verb: str, resource: str) -> int:
    """The API server's own count of `verb` requests on `resource` (apiserver_request_total,
    every code, every client) since it started."""
    response = api.call_api("GET", f"{api.configuration.host}/metrics", header_params={"Accept": "text/plain"})
    response.read()
    text = response.data.decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and f'resource="{resource}"' in line \
                and f'verb="{verb}"' in line and 'subresource=""' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def make_ready_agent(mcp: mcpclient.Session, namespace: str, agent: str, replicas: int = 1) -> list[str]:
    await mcp.call("make_agent", name=agent, namespace=namespace, ai_provider="echo")
    members = (await mcp.call("scale_agent", name=agent, replicas=replicas, namespace=namespace))["members"]

    async def answered() -> bool:
        try:
            await mcp.call("chat_with_agent", name=agent, message="warm up", namespace=namespace)
        except mcpclient.ToolFailed as failed:
            if failed.code != "unavailable":
                raise
            return False
        return True

    await eventually_async(answered, within=120, what=f"agent {agent} to answer a chat")
    return members


async def test_a_warm_chat_reads_no_agentcluster_from_the_api_server(gateway, namespace, token_for, k8s_api):
    # The API server counts every client's GETs: the operator's reconciles of other tests'
    # agents (namespaces being deleted) land in a window now and then. So: up to three windows
    # of 30 chats, one of which must be quiet; one read per chat would be 30 in every window.
    windows = []
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await make_ready_agent(mcp, namespace, "warm")
        for _ in range(3):
            before = apiserver_requests(k8s_api, "GET", "agentclusters")
            for n in range(30):
                await mcp.call("chat_with_agent", name="warm", message=f"hello {n}", namespace=namespace)
            windows.append(apiserver_requests(k8s_api, "GET", "agentclusters") - before)
            if windows[-1] <= 2:
                break
    assert min(windows) <= 2, f"GETs of agentclusters per window of 30 chats: {windows}"


async def test_a_webhook_added_outside_the_gateway_is_served_once_the_watch_delivers_it(
        gateway, namespace, token_for, k8s_api):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="outside", namespace=namespace, ai_provider="echo")
    objects = client.CustomObjectsApi(k8s_api)
    async with httpx2.AsyncClient(timeout=30) as http:
        missing = await http.post(f"{gateway.url}/hooks/{namespace}/outside/late", content=b"{}")
        assert missing.status_code == 404, missing.text
        # As kubectl or GitOps would: straight to the API server, not through a gateway tool.
        objects.patch_namespaced_custom_object(G, V, namespace, P, "outside", {"spec": {
            "functions": [{"name": "ingest", "python": {"entrypoint": "agent_runtime.builtins:echo"}}],
            "webhooks": [{"name": "late", "path": "/late", "function": "ingest",
                          "secretRef": {"name": "hooks", "key": "secret"}}]}})
        started = time.monotonic()

        async def seen() -> int | None:
            answer = await http.post(f"{gateway.url}/hooks/{namespace}/outside/late", content=b"{}")
            # Past the 404, the gateway knows the webhook: an unsigned delivery is refused (401).
            return answer.status_code if answer.status_code != 404 else None

        status = await eventually_async(seen, within=10, interval=0.05, what="the new webhook to be known")
    assert status == 401
    assert time.monotonic() - started < 5, "the watch took more than 5 s to deliver the change"


async def test_an_agent_deleted_outside_the_gateway_is_answered_not_found_once_the_watch_delivers_it(
        gateway, namespace, token_for, k8s_api):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="doomed", namespace=namespace, ai_provider="echo")
        await mcp.call("make_agent", name="stays", namespace=namespace, ai_provider="echo")
        client.CustomObjectsApi(k8s_api).delete_namespaced_custom_object(G, V, namespace, P, "doomed")

        async def gone() -> str | None:
            try:
                await mcp.call("describe_agent", name="doomed", namespace=namespace)
            except mcpclient.ToolFailed as failed:
                return str(failed) if failed.code == "not_found" else None
            return None

        message = await eventually_async(gone, within=30, interval=0.2, what="the deleted agent to be unknown")
    assert message.endswith(f'no agent named "doomed" in namespace "{namespace}"; agents there: stays'), message


async def test_a_scaled_down_replica_stops_receiving_chats_within_the_registry_ttl(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        first, second = await make_ready_agent(mcp, namespace, "shrinking", replicas=2)
        answered: set[str] = set()
        for n in range(20):
            answered.add((await mcp.call("chat_with_agent", name="shrinking", message=f"m{n}",
                                         namespace=namespace))["replica"])
        assert answered == {first, second}, answered
        await mcp.call("scale_agent", name="shrinking", replicas=1, namespace=namespace)
        scaled_at = time.monotonic()
        last_to_removed = scaled_at
        while time.monotonic() - scaled_at < 20:
            reply = await mcp.call("chat_with_agent", name="shrinking", message="after", namespace=namespace)
            if reply["replica"] == second:
                last_to_removed = time.monotonic()
            await asyncio.sleep(0.1)
    assert last_to_removed - scaled_at < 15, "the removed replica kept receiving chats past the registry TTL"


def restricted_kubeconfig(admin: Path, token: str, into: Path) -> Path:
    """The admin kubeconfig's cluster with a ServiceAccount token as its user."""
    config = yaml.safe_load(admin.read_text())
    context = config["contexts"][0]
    context["context"]["user"] = "restricted"
    config["contexts"] = [context]
    config["current-context"] = context["name"]
    config["users"] = [{"name": "restricted", "user": {"token": token}}]
    into.write_text(yaml.safe_dump(config))
    return into


async def test_the_gateway_is_not_ready_until_its_caches_have_synced(
        devcluster, operator, redis_server, namespace, k8s_api, tmp_path):
    # A gateway identity that may get but not yet list or watch AgentClusters cannot sync.
    core, rbac = client.CoreV1Api(k8s_api), client.RbacAuthorizationV1Api(k8s_api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "slow-gateway"}})
    role = {"metadata": {"name": f"slow-gateway-{namespace}"}, "rules": [
        {"apiGroups": [G], "resources": [P], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}
    rbac.create_cluster_role(role)
    binding = {"metadata": {"name": f"slow-gateway-{namespace}"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": role["metadata"]["name"]},
               "subjects": [{"kind": "ServiceAccount", "name": "slow-gateway", "namespace": namespace}]}
    rbac.create_cluster_role_binding(binding)
    token = core.create_namespaced_service_account_token(
        "slow-gateway", namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    kubeconfig = restricted_kubeconfig(devcluster.kubeconfig, token, tmp_path / "restricted.kubeconfig")
    slow = gateway_process.start(tmp_path, kubeconfig, operator.database_url, redis_server.url,
                                 operator.replica_auth_key, wait_ready=False)
    try:
        async with httpx2.AsyncClient(timeout=10) as http:
            await asyncio.sleep(3)
            unready = await http.get(f"{slow.url}/readyz")
            assert unready.status_code == 503, unready.text
            assert re.search(r"agentclusters.*(forbidden|Forbidden)", unready.text), unready.text
            assert (await http.get(f"{slow.url}/healthz")).status_code == 200  # alive, just not ready

            role["rules"][0]["verbs"] = ["get", "list", "watch"]
            rbac.replace_cluster_role(role["metadata"]["name"], role)

            async def ready() -> bool:
                return (await http.get(f"{slow.url}/readyz")).status_code == 200

            await eventually_async(ready, within=60, interval=0.5, what="the gateway to sync once allowed to list")
    finally:
        slow.stop()
        rbac.delete_cluster_role_binding(binding["metadata"]["name"])
        rbac.delete_cluster_role(role["metadata"]["name"])


async def test_two_gateways_share_a_callers_rate_limit_within_the_batch_bound(
        devcluster, operator, redis_server, namespace, token_for, tmp_path):
    limit = 200  # ratelimit.batch_for(200) == 10: each gateway counts up to 10 calls on its own
    if time.time() % 60 > 30:  # the whole test inside one fixed one-minute window
        await asyncio.sleep(61 - time.time() % 60)
    gateways = [gateway_process.start(tmp_path, devcluster.kubeconfig, operator.database_url, redis_server.url,
                                      operator.replica_auth_key, rate_limit_per_minute=limit, name=f"limited-{n}")
                for n in range(2)]
    token = token_for(namespace)
    try:
        allowed, refused = 0, 0
        async with mcpclient.connect(gateways[0].mcp_url, token) as one, \
                mcpclient.connect(gateways[1].mcp_url, token) as two:
            for n in range(2 * limit):
                try:
                    await (one if n % 2 == 0 else two).call("list_agents", namespace=namespace)
                    allowed += 1
                except mcpclient.ToolFailed as failed:
                    assert failed.code == "rate_limited", failed.structured
                    refused += 1
    finally:
        for running in gateways:
            running.stop()
    # Never fewer than the limit (a gateway's estimate is never above the true count), and at
    # most a batch less one per gateway more (agent_gateway/ratelimit.py).
    assert limit <= allowed <= limit + 2 * (10 - 1), (allowed, refused)
    assert refused == 2 * limit - allowed
