"""Metrics scraped from the real processes after real activity: a replica (with its cluster's
token), the gateway and the operator on their metrics ports.

One agent does what the dashboard watches: MCP tool calls (one refused), signed webhook
deliveries through the gateway, scheduled runs, chats with the echo engine (one of them a
malformed tool call, the provider's error). Then every series name the shipped Grafana
dashboard asks for must be in one of the three scrapes, and every scrape keeps the naming rules.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import replica_auth
from devcluster import gateway_process, operator_process
from devcluster.cluster import DevCluster
from tests.e2e.gateway import mcpclient
from tests.e2e.gateway.test_webhooks import SECRET, _make, synced
from tests.e2e.helpers import RunningOperator, eventually
from tests.support import dashboards, prometheus

pytestmark = pytest.mark.e2e
DASHBOARD = Path(__file__).resolve().parents[3] / "charts/agent-clusters/files/dashboards/agentclusters.json"
AGENT = "watched"


@dataclass
class Scrapes:
    namespace: str
    replica: str
    gateway: str
    operator: str


def _replica_scrape(core: client.CoreV1Api, namespace: str) -> str:
    """A scrape of the agent's replica as Prometheus would make it: the pod's IP and port, the
    cluster's token from the namespace's replica-token Secret."""
    pod = core.list_namespaced_pod(namespace, label_selector=f"agentclusters.io/cluster={AGENT}").items[0]
    secret = core.read_namespaced_secret(replica_auth.SECRET_NAME, namespace)
    token = base64.b64decode(secret.data[AGENT]).decode()
    url = f"http://{pod.status.pod_ip}:{pod.spec.containers[0].ports[0].container_port}/metrics"
    answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.text


async def _activity(gateway: gateway_process.RunningGateway, namespace: str, token: str) -> None:
    async with mcpclient.connect(gateway.mcp_url, token) as mcp:
        await _make(mcp, namespace, AGENT, 1)
        await mcp.call("configure_agent_ai", agent_name=AGENT, provider="echo", namespace=namespace)
        await mcp.call("add_schedule", agent_name=AGENT, function_name="ingest", cron_expression="* * * * * *",
                       schedule_name="tick", namespace=namespace)
        await mcp.error("describe_agent", name="no-such-agent", namespace=namespace)  # outcome not_found
        await mcp.error("no_such_tool_" + uuid.uuid4().hex[:6])  # counted as tool "unknown", not a new series
        async with httpx2.AsyncClient(timeout=60) as http:
            await synced(http, gateway, namespace, AGENT)  # a delivery the replica ran: 200 at both
        deadline = time.monotonic() + 120
        while True:  # the replica applies spec.ai live, within seconds
            try:
                await mcp.call("chat_with_agent", name=AGENT, message="hello", namespace=namespace)
                break
            except mcpclient.ToolFailed:
                assert time.monotonic() < deadline, "the replica never took up spec.ai"
                await asyncio.sleep(1)
        # The echo engine's `/call` with arguments that are not JSON: the provider's error.
        with contextlib.suppress(mcpclient.ToolFailed):  # the run fails; the call may say so
            await mcp.call("chat_with_agent", name=AGENT, message="/call state_get {not json", namespace=namespace)


@pytest.fixture(scope="module")
def scrapes(devcluster: DevCluster, k8s_api: ApiClient, operator: RunningOperator,
            gateway: gateway_process.RunningGateway) -> Iterator[Scrapes]:
    core = client.CoreV1Api(k8s_api)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body={"metadata": {"name": namespace}})
    try:
        eventually(lambda: core.read_namespaced_service_account("default", namespace), timeout=30,
                   what=f"the default ServiceAccount of {namespace}")
        core.create_namespaced_secret(namespace, {"metadata": {"name": "hooks"},
                                                  "data": {"secret": base64.b64encode(SECRET).decode()}})
        token = gateway_process.issue_caller_token(devcluster.bin_dir / "kubectl", devcluster.kubeconfig, namespace)
        rbac = client.RbacAuthorizationV1Api(k8s_api)
        rbac.create_namespaced_role(namespace, {"metadata": {"name": "read-hooks"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hooks"], "verbs": ["get"]}]})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": "read-hooks"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-hooks"},
            "subjects": [{"kind": "ServiceAccount", "name": "mcp-caller", "namespace": namespace}]})
        asyncio.run(_activity(gateway, namespace, token))

        def scheduled_runs() -> str:
            text = _replica_scrape(core, namespace)
            assert prometheus.value(text, "agentclusters_runs_total", trigger="schedule") >= 2
            return text

        replica = eventually(scheduled_runs, timeout=60, what="two scheduled runs counted")
        yield Scrapes(namespace, replica, httpx.get(gateway.metrics_url, timeout=30).text,
                      httpx.get(operator_process.metrics_url(operator.state_dir), timeout=30).text)
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")


def test_every_dashboard_query_names_a_metric_found_in_a_real_scrape(scrapes):
    found = (prometheus.sample_names(scrapes.replica) | prometheus.sample_names(scrapes.gateway)
             | prometheus.sample_names(scrapes.operator))
    asked = dashboards.dashboard_metric_names(DASHBOARD)
    assert asked, "the dashboard names no metric"
    assert sorted(asked - found) == []


@pytest.mark.parametrize("component", ["replica", "gateway", "operator"])
def test_scrapes_follow_the_naming_conventions(scrapes, component):
    text = getattr(scrapes, component)
    assert prometheus.sample_names(text), f"the {component} exposes no samples"
    assert prometheus.convention_problems(text) == []


def test_replica_counts_what_it_did_under_its_identity_labels(scrapes):
    text = scrapes.replica
    me = {"agentcluster_namespace": scrapes.namespace, "agentcluster": AGENT}
    assert prometheus.value(text, "agentclusters_runs_total", **me, trigger="webhook", outcome="succeeded") >= 1
    assert prometheus.value(text, "agentclusters_runs_total", **me, trigger="chat", outcome="succeeded") >= 1
    assert prometheus.value(text, "agentclusters_fire_claims_total", **me) >= 2
    assert prometheus.value(text, "agentclusters_ai_tokens_total", **me, token_type="output") > 0
    assert prometheus.value(text, "agentclusters_ai_provider_errors_total", **me, kind="malformed_tool_call") == 1
    assert prometheus.value(text, "agentclusters_webhook_deliveries_total", **me, code="200") >= 1


def test_gateway_counts_tool_calls_by_tool_and_outcome_and_deliveries_by_status(scrapes):
    text = scrapes.gateway
    assert prometheus.value(text, "agentclusters_gateway_tool_calls_total", tool="make_agent", outcome="ok") >= 1
    assert prometheus.value(text, "agentclusters_gateway_tool_calls_total", tool="describe_agent",
                            outcome="not_found") >= 1
    assert prometheus.value(text, "agentclusters_gateway_tool_call_duration_seconds_count", tool="scale_agent") >= 1
    assert prometheus.value(text, "agentclusters_gateway_tool_calls_total", tool="unknown", outcome="not_found") >= 1
    assert not [labels for labels, _ in prometheus.samples(text, "agentclusters_gateway_tool_calls_total")
                if labels["tool"].startswith("no_such_tool_")]
    assert prometheus.value(text, "agentclusters_gateway_webhook_deliveries_total", code="200") >= 1


def test_operator_counts_its_reconciles(scrapes):
    text = scrapes.operator
    assert prometheus.value(text, "agentclusters_operator_reconcile_duration_seconds_count", outcome="success") >= 1
    assert prometheus.samples(text, "agentclusters_operator_workqueue_depth")
