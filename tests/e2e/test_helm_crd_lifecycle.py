"""The CRD's life through Helm, on a control plane of its own (the release owns the one CRD
of the cluster): `helm upgrade` with a changed CRD makes the API server serve the change, and
`helm uninstall` keeps the CRD and every AgentCluster (helm.sh/resource-policy: keep)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devcluster import crd_wait
from tests.e2e import helpers
from tests.e2e.test_helm_chart import Cluster
from tests.unit import chart

pytestmark = pytest.mark.e2e

RELEASE, NAMESPACE = "lifecycle", "agent-clusters"
CRD = "crd/agentclusters.agentclusters.io"
AGENT = {"apiVersion": "agentclusters.io/v1alpha1", "kind": "AgentCluster",
         "metadata": {"name": "survivor", "namespace": "default"}, "spec": {"replicas": 3}}
# The change a newer chart brings: a new spec field and a printer column showing it.
NEW_FIELD = "smokeNote"
NEW_COLUMN = {"name": "Note", "type": "string", "jsonPath": f".spec.{NEW_FIELD}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from devcluster import binaries, controlplane

    bin_dir = binaries.ensure()
    plane = controlplane.ControlPlane(tmp_path_factory.mktemp("crd-apiserver"), bin_dir).start()
    try:
        cluster = Cluster(bin_dir / "kubectl", plane.admin_kubeconfig)
        cluster.helm("install", RELEASE, str(chart.CHART), "--namespace", NAMESPACE, "--create-namespace")
        waited = crd_wait.wait_established([str(cluster.kubectl_binary), "--kubeconfig", str(cluster.kubeconfig)],
                                           CRD)
        assert waited.returncode == 0, waited.stderr
        cluster.ok("create", "-f", "-", stdin=json.dumps(AGENT))
        yield cluster
    finally:
        plane.stop()


def _changed_chart(directory: Path) -> Path:
    """A copy of the chart whose CRD (the generated file the template includes) has a new
    field and a new printer column, as `make crds` writes them."""
    copy = directory / "agent-clusters"
    shutil.copytree(chart.CHART, copy)
    path = copy / "files" / "crds" / chart.CRD_FILE
    crd = yaml.safe_load(path.read_text("utf-8"))
    (version,) = crd["spec"]["versions"]
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][NEW_FIELD] = {"type": "string"}
    version.setdefault("additionalPrinterColumns", []).append(NEW_COLUMN)
    path.write_text(yaml.safe_dump(crd, sort_keys=False), "utf-8")
    return copy


def _set_note(cluster: Cluster) -> str | None:
    """Writes the new field and reads it back: an API server serving the old schema prunes it."""
    cluster.ok("patch", "agc", "survivor", "-n", "default", "--type=merge",
               "-p", json.dumps({"spec": {NEW_FIELD: "from the new CRD"}}))
    return cluster.get("agc", "survivor", "-n", "default")["spec"].get(NEW_FIELD)


def test_helm_upgrade_serves_the_changed_crd(cluster: Cluster, tmp_path: Path) -> None:
    assert _set_note(cluster) is None  # the installed CRD has no such field
    cluster.helm("upgrade", RELEASE, str(_changed_chart(tmp_path)), "--namespace", NAMESPACE, "--reuse-values")
    # The API server re-reads a changed CRD's schema within moments of the update.
    helpers.eventually(lambda: _set_note(cluster) == "from the new CRD", timeout=30,
                       what="the API server to keep the new field")
    table = cluster.ok("get", "agc", "survivor", "-n", "default").splitlines()
    assert "NOTE" in table[0].split(), table
    assert "from the new CRD" in table[1], table
    assert cluster.get(CRD)["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_helm_uninstall_keeps_the_crd_and_the_agentclusters(cluster: Cluster) -> None:
    cluster.helm("uninstall", RELEASE, "--namespace", NAMESPACE)
    assert cluster.kubectl("get", "deployment", f"{RELEASE}-agent-clusters", "-n", NAMESPACE).returncode != 0
    crd = cluster.get(CRD)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert cluster.get("agc", "survivor", "-n", "default")["spec"]["replicas"] == 3


def test_chart_readme_commands_hand_a_kubectl_applied_crd_to_the_release(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Upgrading from a chart that installed the CRD from crds/ (or after `kubectl apply -f crds/`):
    Helm refuses the unowned CRD until the chart README's commands hand it over."""
    from devcluster import binaries, controlplane

    bin_dir = binaries.ensure()
    plane = controlplane.ControlPlane(tmp_path_factory.mktemp("adopt-apiserver"), bin_dir).start()
    try:
        cluster = Cluster(bin_dir / "kubectl", plane.admin_kubeconfig)
        cluster.ok("apply", "-f", str(chart.ROOT / "crds"))
        install = ["install", "agent-clusters", str(chart.CHART), "--namespace", "agent-clusters",
                   "--create-namespace"]
        refused = cluster.helm(*install, check=False)
        assert refused.returncode != 0 and "invalid ownership metadata" in refused.stderr, refused.stderr
        (block,) = re.findall(r"<!-- docs-test: adopt-crd[^>]*-->\n```sh\n(.*?)\n```",
                              (chart.CHART / "README.md").read_text("utf-8"), re.DOTALL)
        for command in [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]:
            assert command[0] == "kubectl", command
            cluster.ok(*command[1:])
        cluster.helm(*install)
        assert cluster.get(CRD)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    finally:
        plane.stop()
