"""A settled AgentCluster's reconcile sends no read request to the API server.

Counted by the kube-apiserver itself (`apiserver_request_total` on its `/metrics`, read as the
cluster admin) around steady reconciles triggered by the operator's periodic resync (every 5 s
in the devcluster settings), counted by the operator's own reconcile histogram. The metric has
no user label, so the test counts what only the operator reads this way: GETs and LISTs of
AgentClusters, replica pods, PodDisruptionBudgets and namespaces. The kubelet lists pods
cluster-wide by node (scope "cluster") every minute and the disruption controller reads the
scale subresource: both are left out by their labels. On the code before the watch-fed cache
this read 5 requests per steady reconcile (GET agentclusters, namespaces, PDB; LIST
agentclusters and pods in the namespace).
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants
from devcluster import operator_process
from tests.e2e.helpers import RunningOperator, eventually
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e

G, V, P = constants.GROUP, constants.VERSION, constants.PLURAL
STEADY_RECONCILES = 10
WINDOWS = 5
WATCHED = {"agentclusters", "pods", "poddisruptionbudgets", "namespaces"}
LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def apiserver_reads(k8s_api: ApiClient) -> Counter[tuple[str, str, str]]:
    """(verb, resource, scope) -> requests so far, for the reads the operator made per pass."""
    response = k8s_api.call_api("GET", k8s_api.configuration.host + "/metrics")
    response.read()
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in response.data.decode().splitlines():
        if not (match := LINE.match(line)):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels["resource"] not in WATCHED or labels.get("subresource"):
            continue
        kubelet = labels["resource"] == "pods" and labels["scope"] == "cluster"
        if labels["verb"] == "GET" or (labels["verb"] == "LIST" and not kubelet):
            counts[(labels["verb"], labels["resource"], labels["scope"])] += int(float(match["value"]))
    return counts


def reconciles(operator: RunningOperator) -> int:
    with urllib.request.urlopen(operator_process.metrics_url(operator.state_dir), timeout=10) as response:
        text = response.read().decode()
    return sum(int(float(line.split()[-1])) for line in text.splitlines()
               if line.startswith("agentclusters_operator_reconcile_duration_seconds_count"))


def steady_window(core: client.CoreV1Api, namespace: str, pods: list[str], k8s_api: ApiClient,
                  operator: RunningOperator) -> tuple[int, dict[tuple[str, str, str], int]]:
    """Reconciles and reads around a burst of pod annotation changes (each one a pod event,
    so a reconcile of the settled cluster): (reconciles, reads by kind)."""
    before, reconciled = apiserver_reads(k8s_api), reconciles(operator)
    for i in range(STEADY_RECONCILES):
        core.patch_namespaced_pod(pods[i % len(pods)], namespace,
                                  {"metadata": {"annotations": {"test/nudge": str(i)}}})
        eventually(lambda i=i: reconciles(operator) > reconciled + i, timeout=30, interval=0.05,
                   what=f"reconcile {i + 1} after a pod event")
    after, done = apiserver_reads(k8s_api), reconciles(operator)
    return done - reconciled, {key: after[key] - before[key] for key in after if after[key] != before[key]}


def test_steady_reconcile_sends_no_get_or_list(agc, k8s_api: ApiClient, operator: RunningOperator,
                                               namespace: str):
    agc.create_namespaced_custom_object(G, V, namespace, P, manifest("steady", 2))
    policy, core = client.PolicyV1Api(k8s_api), client.CoreV1Api(k8s_api)
    eventually(lambda: (agc.get_namespaced_custom_object(G, V, namespace, P, "steady").get("status") or {})
               .get("readyReplicas") == 2 and policy.read_namespaced_pod_disruption_budget("steady", namespace),
               timeout=120, what="2 ready replicas and the budget")
    time.sleep(6)  # one resync round for the last status write to settle
    pods = [p.metadata.name for p in core.list_namespaced_pod(
        namespace, label_selector=f"{constants.LABEL_CLUSTER}=steady").items]

    # Namespaces deleted by earlier tests are emptied by the namespace controller, which LISTs
    # every resource in them, pods and AgentClusters included: measure once they are gone.
    eventually(lambda: not [n for n in core.list_namespace().items if n.status.phase == "Terminating"],
               timeout=180, what="no namespace left terminating by earlier tests")

    # A read made per reconcile shows in every window; another client's occasional read (the
    # metric cannot tell clients apart: something in the control plane GETs an AgentCluster
    # about every 30 s) cannot hit every one of up to WINDOWS windows of a few seconds each.
    windows = []
    for _ in range(WINDOWS):
        windows.append(steady_window(core, namespace, pods, k8s_api, operator))
        if windows[-1][1] == {}:
            break

    assert all(count >= STEADY_RECONCILES for count, _ in windows)
    assert windows[-1][1] == {}, f"(reconciles, reads) per window: {windows}"
