"""The chart follows Helm's and Kubernetes' conventions (rendered, without a cluster): the CRD
as an upgradable template kept on uninstall, aggregated ClusterRoles for the default user-facing
roles, Chart.yaml's kubeVersion, and the `helm test` hook. tests/e2e/test_helm_chart.py checks
the same against an API server."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.unit import chart

CRD_NAME = "agentclusters.agentclusters.io"
SMOKE_CHECK = chart.CHART / "files" / "smoke_check.py"
HOOK_POD = "ac-agent-clusters-smoke-check"


def _crd(values: dict[str, str] | None = None) -> dict[str, Any]:
    return chart.one(chart.render(values), "CustomResourceDefinition", CRD_NAME)


def _without_helm_metadata(crd: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in crd["metadata"].items() if k not in ("labels", "annotations")}
    return {**crd, "metadata": metadata}


# --- the CRD ---------------------------------------------------------------------------------

def test_chart_copy_of_the_crd_is_the_generated_file() -> None:
    """One source: `make crds` writes crds/ and copies it into the chart's files/crds/."""
    copy = chart.CHART / "files" / "crds" / chart.CRD_FILE
    generated = chart.ROOT / "crds" / chart.CRD_FILE
    assert copy.read_bytes() == generated.read_bytes(), f"{copy} drifted from {generated}: run `make crds`"
    assert sorted(p.name for p in copy.parent.iterdir()) == sorted(p.name for p in generated.parent.iterdir())


def test_crd_is_a_template_rendering_the_generated_crd() -> None:
    rendered = _crd()
    generated = yaml.safe_load((chart.ROOT / "crds" / chart.CRD_FILE).read_text("utf-8"))
    assert _without_helm_metadata(rendered) == generated
    assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert rendered["metadata"]["labels"]["app.kubernetes.io/component"] == "crd"


def test_chart_has_no_crds_folder_for_helm_to_install_once() -> None:
    """Helm installs crds/ on the first install only and skips it on upgrade; the template replaces it."""
    assert not (chart.CHART / "crds").exists()


def test_crd_is_kept_on_uninstall_by_default() -> None:
    assert _crd()["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_crd_keep_off_lets_uninstall_delete_it() -> None:
    assert "annotations" not in _crd({"crds.keep": "false"})["metadata"]


def test_crds_disabled_renders_no_crd_for_a_second_release() -> None:
    docs = chart.render({"crds.enabled": "false"})
    assert not [d for d in docs if d["kind"] == "CustomResourceDefinition"]


# --- aggregated ClusterRoles ---------------------------------------------------------------

READ = {"get", "list", "watch"}
WRITE = {"create", "update", "patch", "delete", "deletecollection"}


def _aggregated(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs
            if d["kind"] == "ClusterRole" and d["metadata"]["name"].startswith("agentclusters-")}


def test_aggregated_roles_carry_the_default_roles_labels() -> None:
    roles = _aggregated(chart.render())
    assert sorted(roles) == ["agentclusters-admin", "agentclusters-edit", "agentclusters-view"]
    for level in ("view", "edit", "admin"):
        labels = roles[f"agentclusters-{level}"]["metadata"]["labels"]
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{level}"] == "true"


def test_view_role_reads_and_writes_nothing() -> None:
    rules = chart.rules(_aggregated(chart.render())["agentclusters-view"])
    assert rules == {("agentclusters.io", resource, "*", verb)
                     for resource in ("agentclusters", "agentclusters/status", "agentclusters/scale")
                     for verb in READ}


def test_edit_and_admin_roles_write_specs_and_scale_but_never_status() -> None:
    roles = _aggregated(chart.render())
    for name in ("agentclusters-edit", "agentclusters-admin"):
        rules = chart.rules(roles[name])
        assert {("agentclusters.io", "agentclusters", "*", verb) for verb in READ | WRITE} <= rules, name
        assert {("agentclusters.io", "agentclusters/scale", "*", verb) for verb in ("update", "patch")} <= rules
        assert not {r for r in rules if r[1] == "agentclusters/status" and r[3] not in READ}, name
        assert not {r for r in rules if r[0] != "agentclusters.io"}, name


def test_aggregated_roles_can_be_left_to_another_release() -> None:
    assert not _aggregated(chart.render({"rbac.aggregateToDefaultRoles": "false"}))
    assert not _aggregated(chart.render({"rbac.create": "false"}))


# --- kubeVersion ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1.28.0", "v1.30.2-eks-1234", "v1.34.4"])
def test_chart_installs_on_kubernetes_1_28_and_newer(version: str) -> None:
    result = chart.helm("template", "ac", str(chart.CHART), "--kube-version", version, check=False)
    assert result.returncode == 0, result.stderr


def test_chart_refuses_kubernetes_older_than_1_28() -> None:
    result = chart.helm("template", "ac", str(chart.CHART), "--kube-version", "v1.27.9", check=False)
    assert result.returncode != 0
    assert "chart requires kubeVersion: >=1.28.0-0" in result.stderr


# --- the helm test hook ----------------------------------------------------------------------

def _hook(values: dict[str, str] | None = None, namespace: str = "agent-clusters") -> dict[str, Any]:
    return chart.one(chart.render(values, namespace=namespace), "Pod", HOOK_POD)


def test_helm_test_hook_checks_the_gateway_and_the_webhook_services() -> None:
    pod = _hook()
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ghcr.io/agent-clusters/agent-clusters:0.1.0"
    assert container["command"] == ["python", "/etc/agentclusters/smoke-check/smoke_check.py"]
    assert container["args"] == [
        "--gateway-url=http://ac-agent-clusters-gateway.agent-clusters.svc:8090",
        "--webhook-url=https://ac-agent-clusters-webhook.agent-clusters.svc:9443",
        "--namespace=agent-clusters",
    ]
    assert pod["spec"]["restartPolicy"] == "Never"


def test_helm_test_hook_runs_the_charts_script_from_its_configmap() -> None:
    docs = chart.render()
    pod = chart.one(docs, "Pod", HOOK_POD)
    (volume,) = pod["spec"]["volumes"]
    (mount,) = pod["spec"]["containers"][0]["volumeMounts"]
    config_map = chart.one(docs, "ConfigMap", volume["configMap"]["name"])
    assert mount["mountPath"] == "/etc/agentclusters/smoke-check"
    assert config_map["data"]["smoke_check.py"] == SMOKE_CHECK.read_text("utf-8").rstrip("\n")
    assert "helm.sh/hook" not in config_map["metadata"].get("annotations", {})  # there before the Pod


def test_helm_test_pod_is_not_behind_the_operators_services() -> None:
    docs = chart.render()
    labels = chart.one(docs, "Pod", HOOK_POD)["metadata"]["labels"]
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert not selector.items() <= labels.items(), service["metadata"]["name"]


def test_helm_test_hook_checks_only_what_is_enabled() -> None:
    gateway_only = _hook({"webhook.enabled": "false"})["spec"]["containers"][0]["args"]
    assert [a.split("=")[0] for a in gateway_only] == ["--gateway-url"]
    webhook_only = _hook({"gateway.enabled": "false"})["spec"]["containers"][0]["args"]
    assert [a.split("=")[0] for a in webhook_only] == ["--webhook-url", "--namespace"]
    for values in ({"gateway.enabled": "false", "webhook.enabled": "false"}, {"helmTest.enabled": "false"}):
        assert not [d for d in chart.render(values) if d["kind"] == "Pod"], values


def test_smoke_check_refuses_to_check_nothing() -> None:
    result = subprocess.run([sys.executable, str(SMOKE_CHECK)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "nothing to check" in result.stderr
    result = subprocess.run([sys.executable, str(SMOKE_CHECK), "--webhook-url=https://x:9443"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--webhook-url needs --namespace" in result.stderr
