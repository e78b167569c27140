"""The chart's ServiceMonitors and PodMonitors against prometheus-operator's real CRDs
(devcluster/monitoring_crds.py, pinned version), by server-side dry run: the API server
validates each object with the CRD's OpenAPI schema, as it would in a cluster running
prometheus-operator. Off by default; the Grafana dashboard's ConfigMap too."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devcluster import crd_wait, monitoring_crds
from devcluster.cluster import DevCluster
from tests.unit import chart

pytestmark = pytest.mark.e2e
CRDS = ("crd/podmonitors.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com")


def _kubectl(devcluster: DevCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(devcluster.bin_dir / "kubectl"), f"--kubeconfig={devcluster.kubeconfig}", *args],
                          input=stdin, text=True, capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def monitoring(devcluster: DevCluster) -> DevCluster:
    for path in monitoring_crds.ensure():
        applied = _kubectl(devcluster, "apply", "--server-side", "-f", str(path))
        assert applied.returncode == 0, applied.stderr
    waited = crd_wait.wait_established([str(devcluster.bin_dir / "kubectl"), f"--kubeconfig={devcluster.kubeconfig}"],
                                       *CRDS)
    assert waited.returncode == 0, waited.stderr
    return devcluster


@pytest.fixture
def namespaces(monitoring: DevCluster) -> Iterator[tuple[str, str]]:
    """The release's namespace and an agents' namespace."""
    names = (f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}")
    for name in names:
        assert _kubectl(monitoring, "create", "namespace", name).returncode == 0
    yield names
    for name in names:
        _kubectl(monitoring, "delete", "namespace", name, "--wait=false")


def _monitors(release_namespace: str, agents_namespace: str) -> list[dict]:
    docs = chart.render({**chart.URLS, "metrics.serviceMonitor.enabled": "true",
                         "metrics.serviceMonitor.labels.release": "kube-prometheus-stack",
                         "metrics.podMonitor.enabled": "true",
                         "metrics.podMonitor.agentClusters[0].namespace": agents_namespace,
                         "metrics.podMonitor.agentClusters[0].agentCluster": "scraper",
                         "metrics.podMonitor.agentClusters[1].namespace": agents_namespace,
                         "metrics.podMonitor.agentClusters[1].agentCluster": "reporter"},
                        namespace=release_namespace)
    return [d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor")]


def _dry_run(devcluster: DevCluster, docs: list[dict]) -> subprocess.CompletedProcess[str]:
    return _kubectl(devcluster, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs))


def test_service_and_pod_monitors_pass_a_server_side_dry_run_against_prometheus_operator_crds(
        monitoring, namespaces):
    release, agents = namespaces
    monitors = _monitors(release, agents)
    assert sorted((d["kind"], d["metadata"]["namespace"]) for d in monitors) == [
        ("PodMonitor", agents), ("PodMonitor", agents), ("ServiceMonitor", release), ("ServiceMonitor", release)]
    result = _dry_run(monitoring, monitors)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == 4, result.stdout


def test_the_dry_run_refuses_a_monitor_the_crd_schema_refuses(monitoring, namespaces):
    """The check has teeth: a PodMonitor whose scrape interval is no Prometheus duration."""
    release, agents = namespaces
    pod_monitor = next(d for d in _monitors(release, agents) if d["kind"] == "PodMonitor")
    pod_monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "every minute"
    result = _dry_run(monitoring, [pod_monitor])
    assert result.returncode != 0 and "interval" in result.stderr, result.stderr


def test_pod_monitors_scrape_with_their_clusters_replica_token():
    monitors = [d for d in _monitors("agent-clusters", "team-a") if d["kind"] == "PodMonitor"]
    for monitor, cluster in zip(monitors, ("scraper", "reporter"), strict=True):
        endpoint = monitor["spec"]["podMetricsEndpoints"][0]
        assert monitor["spec"]["selector"]["matchLabels"]["agentclusters.io/cluster"] == cluster
        assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
            "name": "agentclusters-replica-tokens", "key": cluster}}
        assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"


def test_monitors_and_dashboard_are_off_by_default():
    kinds = {(d["kind"], d["metadata"]["name"]) for d in chart.render(chart.URLS)}
    assert not {kind for kind, _ in kinds} & {"ServiceMonitor", "PodMonitor"}
    assert ("ConfigMap", "ac-agent-clusters-dashboard") not in kinds


def test_dashboard_configmap_carries_the_grafana_sidecar_label_and_the_dashboard():
    docs = chart.render({**chart.URLS, "metrics.dashboard.enabled": "true"})
    dashboard = chart.one(docs, "ConfigMap", "ac-agent-clusters-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = Path(chart.CHART / "files/dashboards/agentclusters.json").read_text("utf-8")
    assert dashboard["data"]["agentclusters.json"] == shipped.rstrip("\n")
