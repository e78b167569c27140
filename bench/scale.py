"""scale: the operator next to the StatefulSet controller, and the operator at 200 AgentClusters.

One devcluster (kube-apiserver, kube-controller-manager, kube-scheduler, the process kubelet),
a second process kubelet (one takes 250 pods), one Redis and the bench's durable PostgreSQL,
with the real operator (`agentclusters operator`) as its own process, all in one run.

Part 1, scale-up and scale-down: an AgentCluster and a StatefulSet (`podManagementPolicy:
Parallel`) are scaled 0 -> N and N -> 0 in turn, alternating which goes first, repeated. Up is
timed from the scale request to the controller's own `status.readyReplicas == N` (what
`kubectl wait` reads); down to the last pod gone from the API server. Both run the same pod:
the StatefulSet's template is the spec of a pod the operator made (command, environment,
probes, resources), with the replica name taken from the pod's name.

Part 2, the operator at many AgentClusters (200; 1-3 replicas each, cycling): time until all
are Ready, the operator's resident memory (VmRSS from /proc), read requests per steady
reconcile (the kube-apiserver's own `apiserver_request_total`, GET and LIST of AgentClusters,
pods, PodDisruptionBudgets and namespaces, over resync rounds counted by the operator's
reconcile histogram), and the time to converge after a restart: the operator is stopped
(releasing its Lease), a new one started, and the clock runs from its start until it has
reconciled every cluster once and every cluster shows Ready replicas at its current
generation.

The pods' process: what a replica does after it starts is not what is measured here, and 400
real runtimes (a Python process each, ~100 MB) do not fit a shared 2-core machine. The
operator's `runtimeCommand` is therefore a small HTTP server (`python -m http.server` on the
pod's address and the runtime's port, serving `/readyz` and `/healthz` from a directory), the
same in the AgentCluster's pods and the StatefulSet's. The figures are the controllers'
orchestration (names, status, pods, API traffic) and the kubelet's start-up, not the runtime's.

`--tag before` with `AGENTCLUSTERS_BENCH_OPERATOR_TREE=<checkout>` runs the operator from that
checkout (e.g. the commit before the watch-fed cache); everything else runs from this one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from matplotlib import pyplot

from agent_api import constants
from bench import environment
from devcluster import operator_process, ports, services
from devcluster.cluster import DevCluster
from devcluster.kubelet.containers import kill_registered
from devcluster.processes import Process

G, V, P = constants.GROUP, constants.VERSION, constants.PLURAL
SCALE_NAMESPACE, OPERATOR_NAMESPACE = "bench-scale", "bench-many"
CLUSTER, STATEFULSET = "scale-ac", "scale-sts"
POLL_SECONDS = 0.25
TIMEOUT_SECONDS = 600.0
# Slots enough for every replica of both parts (the default tiers allow 60 per namespace).
TIERS = {"defaultTier": "bench", "tiers": {"bench": {
    "slots": 1000, "cpu": "10m", "memory": "32Mi", "minScheduleIntervalSeconds": 1,
    "allowedImages": ["agent-clusters:"]}}}
RESYNC_ROUNDS = 3  # steady reconciles measured over this many resync rounds
READS = {"agentclusters", "pods", "poddisruptionbudgets", "namespaces"}
METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


# --- the stack ---------------------------------------------------------------------------------
class Stack:
    """A devcluster, Redis and the operator (with the small HTTP server as replica command)."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.cluster = DevCluster(root / "devcluster").start()
        self.api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        self.node2: Process | None = None
        self.operator: Process | None = None
        self.redis: services.Redis | None = None
        try:
            # A process kubelet takes 250 pods; part 2 runs ~400.
            self.node2 = self._second_node(root)
            self.redis = services.Redis(root / "redis", ports.free_port()).start()
            self.key = operator_process.new_replica_auth_key()
            self.state_dir = root / "operator"
            probe_dir = root / "probe"
            probe_dir.mkdir()
            for name in ("readyz", "healthz"):
                (probe_dir / name).write_text("ok\n")
            settings = operator_process.write_settings(
                operator_process.settings_path(self.state_dir), database_url, self.redis.url,
                webhook_port=ports.free_port(), grace_seconds=5, tiers=TIERS, metrics_port=ports.free_port())
            values = yaml.safe_load(settings.read_text())
            values["runtimeCommand"] = [sys.executable, "-m", "http.server", "$(AGENT_HTTP_PORT)",
                                        "--bind", "$(POD_IP)", "--directory", str(probe_dir)]
            settings.write_text(yaml.safe_dump(values, sort_keys=False))
            self.settings = settings
            operator_process.apply_crds(self.cluster.bin_dir / "kubectl", self.cluster.kubeconfig)
            self.start_operator()
        except BaseException:
            self.stop()
            raise

    def _second_node(self, root: Path) -> Process:
        assert self.cluster.control_plane is not None
        name = f"{self.cluster.node_name}-2"
        credentials = self.cluster.control_plane.issue_node_credentials(name)
        kubelet = Process("kubelet-2", [sys.executable, "-m", "devcluster.kubelet", f"--kubeconfig={credentials}",
                                        f"--node-name={name}", f"--state-dir={root / 'kubelet-2'}"],
                          root / "logs" / "kubelet-2.log").start()

        def ready() -> bool:
            kubelet.check_alive()
            try:
                node = self.cluster.control_plane.get(f"/api/v1/nodes/{name}")  # type: ignore[union-attr]
            except OSError:
                return False
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in node.get("status", {}).get("conditions", []))

        wait(ready, f"node {name}", timeout=60)
        return kubelet

    def start_operator(self) -> float:
        """Start the operator; returns the monotonic time it was started at."""
        tree = os.environ.get("AGENTCLUSTERS_BENCH_OPERATOR_TREE")
        saved, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
        if tree:
            # `python -m` puts its working directory first on the path: the child starts there.
            os.environ["PYTHONPATH"] = tree
            os.chdir(tree)
        try:
            began = time.monotonic()
            self.operator = operator_process.launch(self.state_dir, self.cluster.kubeconfig, self.settings,
                                                    self.key)
        finally:
            if tree:
                os.chdir(cwd)
                if saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
        return began

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.node2 is not None:
            self.node2.stop(grace=15)  # it stops its pods' processes
            kill_registered(self.root / "kubelet-2" / "run")
        self.cluster.stop()

    def reconciles(self) -> int:
        with urllib.request.urlopen(operator_process.metrics_url(self.state_dir), timeout=10) as response:
            text = response.read().decode()
        return sum(int(float(line.split()[-1])) for line in text.splitlines()
                   if line.startswith("agentclusters_operator_reconcile_duration_seconds_count"))

    def leading(self) -> bool:
        with urllib.request.urlopen(operator_process.metrics_url(self.state_dir), timeout=10) as response:
            text = response.read().decode()
        return any(line == "agentclusters_operator_leader 1.0" for line in text.splitlines())

    def rss_bytes(self) -> int:
        assert self.operator is not None
        for line in Path(f"/proc/{self.operator.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc/<operator>/status")

    def apiserver_reads(self) -> Counter[str]:
        """'VERB resource' -> requests so far: the reads the operator may make per reconcile.
        Left out: the kubelet's cluster-wide pod LIST (by node) and the scale subresource (the
        disruption controller's)."""
        response = self.api.call_api("GET", self.api.configuration.host + "/metrics")
        response.read()
        counts: Counter[str] = Counter()
        for line in response.data.decode().splitlines():
            if not (match := METRIC.match(line)):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            if labels["resource"] not in READS or labels.get("subresource") or labels["verb"] not in ("GET", "LIST"):
                continue
            if labels["resource"] == "pods" and labels["scope"] == "cluster":
                continue
            counts[f"{labels['verb']} {labels['resource']}"] += int(float(match["value"]))
        return counts


def namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    deadline = time.monotonic() + 60
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            return
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_SECONDS)


def wait(check: Any, what: str, timeout: float = TIMEOUT_SECONDS) -> float:
    """Poll `check` until true; returns the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic()


def manifest(name: str, replicas: int, functions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": constants.API_VERSION, "kind": constants.KIND, "metadata": {"name": name},
            "spec": {"replicas": replicas, **({"functions": functions} if functions else {})}}


# --- part 1: scale-up and scale-down against a StatefulSet ------------------------------------
def pods_left(core: client.CoreV1Api, selector: str) -> int:
    return len(core.list_namespaced_pod(SCALE_NAMESPACE, label_selector=selector).items)


def scale_cluster(stack: Stack, replicas: int) -> float:
    custom, core = client.CustomObjectsApi(stack.api), client.CoreV1Api(stack.api)
    began = time.monotonic()
    custom.patch_namespaced_custom_object_scale(G, V, SCALE_NAMESPACE, P, CLUSTER, {"spec": {"replicas": replicas}})
    if replicas:
        done = wait(lambda: (custom.get_namespaced_custom_object(G, V, SCALE_NAMESPACE, P, CLUSTER)
                             .get("status") or {}).get("readyReplicas") == replicas, f"{CLUSTER} ready")
    else:
        done = wait(lambda: pods_left(core, f"{constants.LABEL_CLUSTER}={CLUSTER}") == 0, f"{CLUSTER} empty")
    return done - began


def scale_statefulset(stack: Stack, replicas: int) -> float:
    apps, core = client.AppsV1Api(stack.api), client.CoreV1Api(stack.api)
    began = time.monotonic()
    apps.patch_namespaced_stateful_set_scale(STATEFULSET, SCALE_NAMESPACE, {"spec": {"replicas": replicas}})
    if replicas:
        done = wait(lambda: (apps.read_namespaced_stateful_set(STATEFULSET, SCALE_NAMESPACE).status.ready_replicas
                             or 0) == replicas, f"{STATEFULSET} ready")
    else:
        done = wait(lambda: pods_left(core, f"app={STATEFULSET}") == 0, f"{STATEFULSET} empty")
    return done - began


def statefulset_from(pod: dict[str, Any]) -> dict[str, Any]:
    """A StatefulSet whose pods are the operator's pod: same spec, the replica name from the
    pod's own name (the StatefulSet has no member names)."""
    spec = {k: v for k, v in pod["spec"].items() if k not in ("nodeName",)}
    for container in spec["containers"]:
        container["env"] = [
            {"name": e["name"], "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            if e["name"] == "AGENT_REPLICA" else e for e in container.get("env") or []]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": STATEFULSET, "namespace": SCALE_NAMESPACE},
        "spec": {
            "replicas": 0, "serviceName": STATEFULSET, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": STATEFULSET}},
            "template": {"metadata": {"labels": {"app": STATEFULSET}}, "spec": spec},
        },
    }


def part_scale(stack: Stack, replicas: int, repeats: int) -> dict[str, Any]:
    custom, core = client.CustomObjectsApi(stack.api), client.CoreV1Api(stack.api)
    namespace(stack.api, SCALE_NAMESPACE)
    custom.create_namespaced_custom_object(G, V, SCALE_NAMESPACE, P, manifest(CLUSTER, 1))
    wait(lambda: (custom.get_namespaced_custom_object(G, V, SCALE_NAMESPACE, P, CLUSTER)
                  .get("status") or {}).get("readyReplicas") == 1, f"{CLUSTER} first replica")
    [pod] = stack.api.sanitize_for_serialization(core.list_namespaced_pod(
        SCALE_NAMESPACE, label_selector=f"{constants.LABEL_CLUSTER}={CLUSTER}").items)
    scale_cluster(stack, 0)
    client.AppsV1Api(stack.api).create_namespaced_stateful_set(SCALE_NAMESPACE, statefulset_from(pod))
    rounds = []
    for index in range(repeats):
        order = ["agentcluster", "statefulset"] if index % 2 == 0 else ["statefulset", "agentcluster"]
        figures: dict[str, float] = {}
        for which in order:
            scale = scale_cluster if which == "agentcluster" else scale_statefulset
            figures[f"{which}_up_seconds"] = scale(stack, replicas)
            figures[f"{which}_down_seconds"] = scale(stack, 0)
            print(f"scale: round {index + 1} {which}: up {figures[f'{which}_up_seconds']:.1f} s, "
                  f"down {figures[f'{which}_down_seconds']:.1f} s", flush=True)
        rounds.append({"order": order, **figures})

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    summary = {f"{w}_{d}_median": median(f"{w}_{d}_seconds")
               for w in ("agentcluster", "statefulset") for d in ("up", "down")}
    summary["up_ratio"] = summary["agentcluster_up_median"] / summary["statefulset_up_median"]
    summary["down_ratio"] = summary["agentcluster_down_median"] / summary["statefulset_down_median"]
    return {"replicas": replicas, "repeats": repeats, "rounds": rounds, **summary}


# --- part 2: the operator at many AgentClusters -------------------------------------------------
def all_converged(custom: client.CustomObjectsApi, want: dict[str, int]) -> bool:
    items = custom.list_namespaced_custom_object(G, V, OPERATOR_NAMESPACE, P)["items"]
    ok = 0
    for item in items:
        s = item.get("status") or {}
        if (s.get("readyReplicas") == want.get(item["metadata"]["name"])
                and s.get("observedGeneration") == item["metadata"]["generation"]):
            ok += 1
    return ok == len(want)


def steady_reads(stack: Stack, rounds: int) -> dict[str, Any]:
    resync = float(yaml.safe_load(stack.settings.read_text())["resyncSeconds"])
    before, reconciled = stack.apiserver_reads(), stack.reconciles()
    time.sleep(rounds * resync)
    after, done = stack.apiserver_reads(), stack.reconciles()
    count = done - reconciled
    by_kind = {k: (after[k] - before[k]) / count for k in sorted(after) if after[k] != before[k]}
    return {"reconciles": count, "seconds": rounds * resync, "per_reconcile": by_kind,
            "lists_per_reconcile": sum(v for k, v in by_kind.items() if k.startswith("LIST")),
            "gets_per_reconcile": sum(v for k, v in by_kind.items() if k.startswith("GET"))}


def part_operator(stack: Stack, clusters: int) -> dict[str, Any]:
    custom = client.CustomObjectsApi(stack.api)
    namespace(stack.api, OPERATOR_NAMESPACE)
    want = {f"c{i:03d}": 1 + i % 3 for i in range(clusters)}
    began = time.monotonic()
    for name, replicas in want.items():
        custom.create_namespaced_custom_object(G, V, OPERATOR_NAMESPACE, P, manifest(name, replicas))
    ready = wait(lambda: all_converged(custom, want), f"{clusters} clusters ready", timeout=1800)
    created_to_ready = ready - began
    print(f"scale: {clusters} clusters ({sum(want.values())} replicas) ready in {created_to_ready:.1f} s",
          flush=True)
    time.sleep(10)  # the last status writes and budgets settle
    steady = steady_reads(stack, RESYNC_ROUNDS)
    rss_steady = stack.rss_bytes()
    print(f"scale: steady: {steady}; RSS {rss_steady / 2**20:.0f} MiB", flush=True)

    assert stack.operator is not None
    stack.operator.stop()  # graceful: it releases the Lease, the next one leads at once
    started = stack.start_operator()  # returns once its webhook serves
    serving = time.monotonic()
    leading = wait(stack.leading, "the new operator leading")
    first = stack.reconciles()  # a fresh process: counts from 0
    reconciled = wait(lambda: stack.reconciles() - first >= clusters, f"{clusters} reconciles after restart")
    converged = max(reconciled, wait(lambda: all_converged(custom, want), "converged after restart"))
    rss_restarted = stack.rss_bytes()
    print(f"scale: restart: serving after {serving - started:.1f} s, leading after {leading - started:.1f} s, "
          f"every cluster reconciled after {reconciled - started:.1f} s, converged after "
          f"{converged - started:.1f} s; RSS {rss_restarted / 2**20:.0f} MiB", flush=True)
    time.sleep(10)
    steady_after = steady_reads(stack, RESYNC_ROUNDS)
    return {
        "clusters": clusters, "replicas": sum(want.values()),
        "created_to_ready_seconds": created_to_ready,
        "steady": steady, "rss_bytes_steady": rss_steady,
        "restart_serving_seconds": serving - started,
        "restart_leading_seconds": leading - started,
        "restart_reconciled_all_seconds": reconciled - started,
        "leading_to_reconciled_all_seconds": reconciled - leading,
        "restart_converged_seconds": converged - started,
        "rss_bytes_after_restart": rss_restarted,
        "steady_after_restart": steady_after,
    }


async def run(bench: environment.Bench) -> dict[str, Any]:
    replicas, repeats, clusters = (10, 1, 20) if bench.quick else (50, 3, 200)
    url = await bench.fresh_database("bench_scale", migrated=False)
    tree = os.environ.get("AGENTCLUSTERS_BENCH_OPERATOR_TREE")
    operator_commit = (await asyncio.to_thread(
        subprocess.run, ["git", "-C", tree or str(environment.REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False)).stdout.strip()
    root = Path(tempfile.mkdtemp(prefix="agentclusters-bench-scale-"))

    def measure() -> dict[str, Any]:
        stack = Stack(root, url)
        try:
            scale = None if tree else part_scale(stack, replicas, repeats)
            return {"scale": scale, "operator": part_operator(stack, clusters)}
        finally:
            stack.stop()

    try:
        figures = await asyncio.to_thread(measure)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
    await _drop(bench, "bench_scale")
    return {"command": bench.command("scale"), "operator_commit": operator_commit,
            "replica_command": "python -m http.server (serves /readyz and /healthz)", **figures}


async def _drop(bench: environment.Bench, name: str) -> None:
    admin = await asyncpg.connect(bench.admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# --- report --------------------------------------------------------------------------------------
def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def render(variants: list[tuple[str, dict[str, Any]]]) -> tuple[str, list[Path]]:
    parts: list[str] = []
    plots: list[Path] = []
    by_label = dict(variants)
    now = by_label.get("now") or variants[-1][1]
    scale = now.get("scale")
    if scale:
        r = scale
        parts.append("\n".join([
            f"Scale-up 0 → {r['replicas']} Ready and back to 0, median of {r['repeats']} alternating rounds "
            f"(replica process: {now['replica_command']}, the same pod spec on both sides).", "",
            "| | AgentCluster (s) | StatefulSet, Parallel (s) | ratio (goal ≤ 1.0) |",
            "| --- | ---: | ---: | ---: |",
            f"| 0 → {r['replicas']} Ready | {r['agentcluster_up_median']:.1f} | {r['statefulset_up_median']:.1f} "
            f"| {r['up_ratio']:.2f} |",
            f"| {r['replicas']} → 0 pods | {r['agentcluster_down_median']:.1f} | "
            f"{r['statefulset_down_median']:.1f} | {r['down_ratio']:.2f} |"]))
        figure, axis = pyplot.subplots(figsize=(6, 3.2))
        for offset, (who, colour) in enumerate((("agentcluster", "tab:blue"), ("statefulset", "tab:gray"))):
            axis.bar([i + offset * 0.38 for i in range(2)],
                     [r[f"{who}_up_median"], r[f"{who}_down_median"]], width=0.36, color=colour, label=who)
        axis.set_xticks([0.19, 1.19], [f"0 → {r['replicas']} Ready", f"{r['replicas']} → 0"])
        axis.set_ylabel("seconds (median)")
        axis.legend()
        figure.tight_layout()
        path = environment.RESULTS_DIR / "scale-up-down.png"
        figure.savefig(path, dpi=110)
        pyplot.close(figure)
        plots.append(path)
        up, down = r["up_ratio"], r["down_ratio"]
        per_round = [(x["agentcluster_up_seconds"] / x["statefulset_up_seconds"],
                      x["agentcluster_down_seconds"] / x["statefulset_down_seconds"]) for x in r["rounds"]]
        parts.append(
            f"Reading: scaling up, the AgentCluster took {up:.2f}x the StatefulSet's time "
            f"({'ahead of or level with' if up <= 1.0 else 'behind'} the goal of 1.0); scaling down "
            f"{down:.2f}x ({'within' if down <= 1.0 else 'behind'} the goal). Round by round the up ratio ran "
            f"from {min(u for u, _ in per_round):.2f} to {max(u for u, _ in per_round):.2f} and the down ratio "
            f"from {min(d for _, d in per_round):.2f} to {max(d for _, d in per_round):.2f}: each side's time is "
            "mostly the kubelets' (both sides run the same pods on the same two process kubelets, which start "
            f"{r['replicas']} processes and probe each every 2 s; a pod is Ready at the first probe after its "
            "process serves), "
            "so the machine's load in a round moves both. The operator's own part, up: it records every name in "
            "status and registers them all in PostgreSQL in one statement (it was one commit per name), then "
            "creates the pods 16 at a time on API threads of its own (it was 8 at a time, capped at 6 by "
            "asyncio's default thread pool), where the StatefulSet controller sends a burst of 30 and then 20 a "
            "second; Ready is each side's own status, written from pod events, the operator's one reconcile pass "
            "after the last pod turns Ready. Down: it marks members Terminating in status before deleting their "
            "pods, 16 at a time, and archives them in PostgreSQL in one transaction once their pods are gone (it "
            "was one transaction per member), after the clock stops: the figure is the last pod gone. The extra "
            "work on both ways is the record the StatefulSet does not keep.")
    rows = ["| figure | " + " | ".join(f"`{label}`" for label, _ in variants) + " | goal |",
            "| --- | " + " | ".join("---:" for _ in variants) + " | ---: |"]

    def row(name: str, goal: str, value: Any) -> None:
        rows.append(f"| {name} | " + " | ".join(value(result["operator"]) for _, result in variants)
                    + f" | {goal} |")

    row("AgentClusters (replicas)", "", lambda o: f"{o['clusters']} ({o['replicas']})")
    row("created → all Ready (s)", "", lambda o: f"{o['created_to_ready_seconds']:.1f}")
    row("LIST per steady reconcile", "0", lambda o: f"{o['steady']['lists_per_reconcile']:.2f}")
    row("GET per steady reconcile", "0", lambda o: f"{o['steady']['gets_per_reconcile']:.2f}")
    row("operator RSS, steady", "≤ 150 MiB", lambda o: _mib(o["rss_bytes_steady"]))
    row("restart → new process serving (s)", "", lambda o: f"{o.get('restart_serving_seconds', 0):.1f}")
    row("restart → Lease acquired (s)", "", lambda o: f"{o.get('restart_leading_seconds', 0):.1f}")
    row("restart → every cluster reconciled (s)", "", lambda o: f"{o['restart_reconciled_all_seconds']:.1f}")
    row("Lease acquired → every cluster reconciled (s)", "",
        lambda o: f"{o.get('leading_to_reconciled_all_seconds', 0):.1f}")
    row("restart → all converged (s)", "≤ 60", lambda o: f"{o['restart_converged_seconds']:.1f}")
    row("operator RSS after restart", "≤ 150 MiB", lambda o: _mib(o["rss_bytes_after_restart"]))
    row("reads per steady reconcile, by kind", "",
        lambda o: ", ".join(f"{k} {v:.2f}" for k, v in o["steady"]["per_reconcile"].items()) or "none")
    parts.append("The operator at many AgentClusters (the operator's commit: "
                 + ", ".join(f"`{label}` `{result.get('operator_commit')}`" for label, result in variants)
                 + "; `before` is the operator without the watch-fed cache):\n\n" + "\n".join(rows))
    figure, axis = pyplot.subplots(figsize=(6, 3.2))
    names = [label for label, _ in variants]
    lists = [result["operator"]["steady"]["lists_per_reconcile"] for _, result in variants]
    gets = [result["operator"]["steady"]["gets_per_reconcile"] for _, result in variants]
    axis.bar([i - 0.18 for i in range(len(names))], lists, width=0.36, label="LIST", color="tab:red")
    axis.bar([i + 0.18 for i in range(len(names))], gets, width=0.36, label="GET", color="tab:orange")
    axis.set_xticks(range(len(names)), names)
    axis.set_ylabel("requests per steady reconcile")
    axis.legend()
    figure.tight_layout()
    path = environment.RESULTS_DIR / "scale-operator-requests.png"
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    plots.append(path)
    o = now["operator"]
    verdicts = []
    verdicts.append(f"{o['steady']['lists_per_reconcile']:.2f} LIST and {o['steady']['gets_per_reconcile']:.2f} "
                    f"GET per steady reconcile over {o['steady']['reconciles']} reconciles "
                    f"({'meets' if o['steady']['lists_per_reconcile'] == 0 else 'misses'} the goal of 0 LIST)")
    if "before" in by_label:
        b = by_label["before"]["operator"]["steady"]
        verdicts.append(f"the operator before the watch-fed cache made {b['lists_per_reconcile']:.2f} LIST and "
                        f"{b['gets_per_reconcile']:.2f} GET per steady reconcile")
        bo = by_label["before"]["operator"]
        verdicts.append(f"after a restart it took {bo['restart_converged_seconds']:.1f} s to converge (now "
                        f"{o['restart_converged_seconds']:.1f} s: every pass then waited on five requests); the cache "
                        f"costs {(o['rss_bytes_steady'] - bo['rss_bytes_steady']) / 2**20:+.0f} MiB of steady "
                        "resident memory next to it (runs at different times on a shared machine: memory and "
                        "times compare loosely, request counts exactly)")
    rss = max(o["rss_bytes_steady"], o["rss_bytes_after_restart"])
    verdicts.append(f"resident memory peaked at {_mib(rss)} "
                    f"({'within' if rss <= 150 * 2**20 else 'over'} the 150 MiB goal)")
    verdicts.append(f"after a restart every cluster was reconciled in {o['restart_reconciled_all_seconds']:.1f} s "
                    f"and all converged in {o['restart_converged_seconds']:.1f} s "
                    f"({'within' if o['restart_converged_seconds'] <= 60 else 'over'} the 60 s goal), of which "
                    f"{o['restart_leading_seconds']:.1f} s went to starting the process (imports, migrations "
                    "check, webhook server) and taking the Lease, and "
                    f"{o['leading_to_reconciled_all_seconds']:.1f} s to the first pass over every cluster")
    remaining = {k: v for k, v in o["steady"]["per_reconcile"].items() if v}
    parts.append(
        f"Reading ({o['clusters']} AgentClusters, {o['replicas']} replicas): " + "; ".join(verdicts) + ". "
        + ("The reads that remain per reconcile: " + ", ".join(f"{k} {v:.2f}" for k, v in remaining.items())
           + " (the metric has no user label: another client's reads in the window count too). "
           if remaining else "")
        + "Not counted: the two Secrets the operator reads by name (the namespace's runtime Secret and its "
        "replica token Secret), each checked once per resync interval per namespace and per cluster "
        "respectively (`credentials.py`, `replica_auth.py`): Secrets are not watched, since a watch would "
        "need every Secret of every namespace. "
        "The restart converges on a warm start: the pods kept running, so a new operator's work is one "
        "pass over every cluster from its watch-fed cache (kopf's initial LIST of each kind, then "
        "reads from memory); the figure does not include recreating pods.")
    return "\n\n".join(parts), plots
