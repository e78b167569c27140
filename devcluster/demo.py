"""`make demo`: the product's scenario on a devcluster that starts from nothing.

1. the control plane comes up (building Kubernetes from its Go modules on a cold machine);
2. a StatefulSet's pods run as local processes, each answering HTTP on its own pod IP;
3. an AgentCluster gets five named replicas, scales down to three (the newest two are
   archived), and back up to five (two names never seen before).

Everything runs in a temporary directory and is stopped at the end (`--keep` leaves it up).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from devcluster import operator_process, services
from devcluster.cluster import DevCluster
from devcluster.ports import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent


class Demo:
    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster

    def kubectl(self, *args: str, show: bool = True, stdin: str | None = None) -> str:
        if show:
            print(f"\n$ kubectl {' '.join(args)}", flush=True)
        result = subprocess.run(
            [str(self.cluster.bin_dir / "kubectl"), f"--kubeconfig={self.cluster.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        if show:
            print(result.stdout.rstrip(), flush=True)
        return result.stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json", show=False))

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 120) -> None:
        wait_until(check, timeout=timeout, what=what, interval=0.5)


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def statefulset_demo(demo: Demo) -> None:
    step("A StatefulSet whose pods are local processes (the process kubelet)")
    manifest = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "http", "image": "python:3.11",
                    "command": [sys.executable, "-m", "http.server", "8000", "--bind", "$(POD_IP)"],
                    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
                }]},
            },
        },
    }
    demo.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    demo.wait("3 ready web pods", lambda: demo.get("statefulset", "web").get("status", {}).get("readyReplicas") == 3)
    demo.kubectl("get", "pods", "-l", "app=web", "-o", "wide")
    ip = demo.get("pod", "web-1")["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8000/", timeout=5) as response:
        print(f"\nGET http://{ip}:8000/ -> HTTP {response.status} from web-1's own process")
    demo.kubectl("delete", "statefulset", "web", "--wait=true")


def agentcluster_demo(demo: Demo) -> None:
    step("An AgentCluster: `replicas: 5` becomes five named replicas")
    manifest = yaml.safe_load((REPO / "examples" / "01-minimal.yaml").read_text())
    name = manifest["metadata"]["name"]
    manifest["spec"]["replicas"] = 5
    demo.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def ready(count: int) -> bool:
        status = demo.get("agentcluster", name).get("status") or {}
        return status.get("readyReplicas") == count and len(status.get("members") or []) == count

    demo.wait("5 ready replicas", lambda: ready(5))
    demo.kubectl("get", "agentclusters")
    first = names(demo, name)
    print("\nmembers (ordinal: name):", ", ".join(f"{o}: {n}" for o, n in first))

    step("Scale down to 3: the newest two stop and are archived")
    demo.kubectl("scale", f"agentcluster/{name}", "--replicas=3")
    demo.wait("3 ready replicas, 2 archived",
              lambda: ready(3) and len(demo.get("agentcluster", name)["status"].get("archived") or []) == 2)
    archived = demo.get("agentcluster", name)["status"]["archived"]
    print("archived:", ", ".join(a["name"] for a in archived))

    step("Scale back up to 5: two names never seen before")
    demo.kubectl("scale", f"agentcluster/{name}", "--replicas=5")
    demo.wait("5 ready replicas", lambda: ready(5))
    final = names(demo, name)
    fresh = sorted({n for _, n in final} - {n for _, n in first})
    print("members:", ", ".join(f"{o}: {n}" for o, n in final))
    print("new names:", ", ".join(fresh))
    demo.kubectl("get", "pods", "-l", f"agentclusters.io/cluster={name}")
    demo.kubectl("describe", "agentcluster", name)


def peak_memory(pids: dict[str, int]) -> dict[str, int]:
    """Peak resident memory (VmHWM, KiB) of each running process, from /proc."""
    peaks = {}
    for name, pid in pids.items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[name] = int(line.split()[1])
    return peaks


def replica_pids(demo: Demo) -> dict[str, int]:
    pids = {}
    for pod in demo.get("pods", "-l", "agentclusters.io/cluster")["items"]:
        for container in pod.get("status", {}).get("containerStatuses") or []:
            if container.get("containerID", "").startswith("process://"):
                pids[pod["metadata"]["name"]] = int(container["containerID"].removeprefix("process://"))
    return pids


def names(demo: Demo, cluster: str) -> list[tuple[int, str]]:
    members = demo.get("agentcluster", cluster)["status"]["members"]
    return sorted((m["ordinal"], m["name"]) for m in members)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentclusters demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave everything running at the end")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="agentclusters-demo-"))
    step("Bringing up PostgreSQL, Redis and a real Kubernetes control plane (no Docker)")
    started = time.monotonic()
    postgres = services.Postgres(root / "postgres", free_port()).start()
    redis = services.Redis(root / "redis", free_port()).start()
    cluster = DevCluster(root / "cluster")
    operator = None
    try:
        cluster.start()
        operator = operator_process.start(root / "cluster", cluster.bin_dir / "kubectl", cluster.kubeconfig,
                                          postgres.url, redis.url)
        print(f"up in {time.monotonic() - started:.0f}s (state in {root})")
        demo = Demo(cluster)
        demo.kubectl("version")
        demo.kubectl("get", "nodes", "-o", "wide")
        statefulset_demo(demo)
        agentcluster_demo(demo)
        step("Peak memory of what ran (VmHWM)")
        peaks = peak_memory({**cluster.pids(), "operator": operator.pid, **replica_pids(demo)})
        for name, kib in peaks.items():
            print(f"  {name:<34} {kib / 1024:7.1f} MiB")
        print(f"  {'total':<34} {sum(peaks.values()) / 1024:7.1f} MiB")
        step("Done")
        if args.keep:
            print(f"left running; KUBECONFIG={cluster.kubeconfig}")
            return 0
    finally:
        if not args.keep:
            if operator is not None:
                operator.stop()
            cluster.stop()
            postgres.stop()
            redis.stop()
    return 0
