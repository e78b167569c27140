"""The generated CRD on a real kube-apiserver: accepted, and each invalid AgentCluster is
refused with the message recorded in `cases.py` (schema, enum and CEL errors).

Starts a private control plane (devcluster) for the module; `make test` builds the
binaries first. Checks only the admission webhook can make (`apiserver=None`) are expected
to pass the API server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_api import crd
from devcluster import crd_wait
from tests.unit.api import cases

pytestmark = pytest.mark.e2e


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.base = [str(binary), "--kubeconfig", str(kubeconfig)]

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args], input=stdin, text=True, capture_output=True, timeout=60
        )


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    from devcluster import binaries, controlplane

    bin_dir = binaries.ensure()
    plane = controlplane.ControlPlane(tmp_path_factory.mktemp("apiserver"), bin_dir).start()
    try:
        k = Kubectl(bin_dir / "kubectl", plane.admin_kubeconfig)
        applied = k("apply", "-f", "-", stdin=crd.render())
        assert applied.returncode == 0, applied.stderr
        established = crd_wait.wait_established(k.base, f"crd/{crd.constants.CRD_NAME}")
        assert established.returncode == 0, established.stderr
        yield k
    finally:
        plane.stop()


def _dry_run_create(kubectl: Kubectl, manifest: dict) -> subprocess.CompletedProcess[str]:
    return kubectl("create", "--dry-run=server", "-o", "name", "-f", "-",
                   stdin=json.dumps(manifest))


@pytest.mark.parametrize("case", cases.INVALID, ids=lambda c: c.id)
def test_invalid_agent_cluster_is_refused(kubectl: Kubectl, case: cases.Invalid) -> None:
    result = _dry_run_create(kubectl, case.manifest)
    if case.apiserver is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0
        assert case.apiserver in result.stderr, result.stderr


@pytest.mark.parametrize(("name", "manifest"), cases.VALID, ids=[n for n, _ in cases.VALID])
def test_valid_agent_cluster_is_accepted(kubectl: Kubectl, name: str, manifest: dict) -> None:
    result = _dry_run_create(kubectl, manifest)
    assert result.returncode == 0, result.stderr


def test_examples_apply_and_scale_within_bounds(kubectl: Kubectl) -> None:
    examples = Path(__file__).parents[2] / "examples"
    applied = kubectl("apply", "-f", str(examples))
    assert applied.returncode == 0, applied.stderr
    got = kubectl("get", "agc", "hello", "-o", "json")
    spec = json.loads(got.stdout)["spec"]
    assert spec["limits"]["maxConcurrentRuns"] == 4  # defaulted by the API server
    assert spec["statePolicy"] == {"whenDeleted": "Retain"}
    assert kubectl("scale", "agc", "hello", "--replicas=7").returncode == 0
    too_many = kubectl("scale", "agc", "hello", "--replicas=500")
    assert "spec.replicas in body should be less than or equal to 100" in too_many.stderr


def test_printer_columns_show_the_first_member(kubectl: Kubectl) -> None:
    manifest = cases.manifest(name="columns", replicas=2)
    assert kubectl("apply", "-f", "-", stdin=json.dumps(manifest)).returncode == 0
    status = {"status": {"replicas": 2, "readyReplicas": 1, "selector": "agentclusters.io/cluster=columns",
                         "members": [{"name": "daring-duck", "ordinal": 0, "pod": "columns-daring-duck"},
                                     {"name": "swift-falcon", "ordinal": 1, "pod": "columns-swift-falcon"}]}}
    patched = kubectl("patch", "agc", "columns", "--subresource=status", "--type=merge",
                      "-p", json.dumps(status))
    assert patched.returncode == 0, patched.stderr
    table = kubectl("get", "agc", "columns", "--no-headers", "-o", "wide").stdout.split()
    assert table[0] == "columns" and table[-1] == "daring-duck"
    scale = json.loads(kubectl("get", "--raw",
                               "/apis/agentclusters.io/v1alpha1/namespaces/default/agentclusters/columns/scale").stdout)
    assert scale["status"] == {"replicas": 2, "selector": "agentclusters.io/cluster=columns"}


def _table(kubectl: Kubectl, name: str) -> dict[str, object]:
    """The API server's Table for one AgentCluster (what `kubectl get` prints)."""
    from kubernetes import config

    from tests.e2e.operator.test_printer_columns import table_row

    api = config.new_client_from_config(kubectl.base[2])
    try:
        return table_row(api, "default", name)
    finally:
        api.close()


def test_table_shows_a_degraded_cluster_as_not_ready_though_its_pods_are(kubectl: Kubectl) -> None:
    """Every pod ready (2/2) and yet Degraded: the Ready and Reason columns come from the Ready
    condition, so `kubectl get agc` does not show it healthy."""
    manifest = cases.manifest(name="sick", replicas=2)
    assert kubectl("apply", "-f", "-", stdin=json.dumps(manifest)).returncode == 0
    now = "2026-01-01T00:00:00Z"
    status = {"status": {"replicas": 2, "readyReplicas": 2, "archivedCount": 31, "observedGeneration": 1,
                         "conditions": [
                             {"type": "Ready", "status": "False", "reason": "ConfigNotStored",
                              "message": "2/2 replicas ready; could not store the configuration",
                              "lastTransitionTime": now},
                             {"type": "Degraded", "status": "True", "reason": "ConfigNotStored",
                              "message": "could not store the configuration", "lastTransitionTime": now}]}}
    patched = kubectl("patch", "agc", "sick", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    assert patched.returncode == 0, patched.stderr

    row = _table(kubectl, "sick")

    assert (row["Ready-Replicas"], row["Ready"], row["Reason"]) == (2, "False", "ConfigNotStored")
    assert row["Message"] == "2/2 replicas ready; could not store the configuration"
    assert (row["Archived"], row["Generation"], row["Observed"]) == (31, 1, 1)


def test_table_wide_columns_are_priority_one(kubectl: Kubectl) -> None:
    manifest = cases.manifest(name="wide", replicas=1)
    assert kubectl("apply", "-f", "-", stdin=json.dumps(manifest)).returncode == 0
    narrow = kubectl("get", "agc", "wide").stdout.splitlines()[0].split()
    wide = kubectl("get", "agc", "wide", "-o", "wide").stdout.splitlines()[0].split()

    assert narrow == ["NAME", "REPLICAS", "READY-REPLICAS", "READY", "REASON", "AGE"]
    assert wide == [*narrow, "MESSAGE", "MODEL", "ARCHIVED", "GENERATION", "OBSERVED", "FIRST-MEMBER"]
