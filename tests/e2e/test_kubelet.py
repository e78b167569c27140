"""The process kubelet against the real control plane: pods as local processes."""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster import ports
from devcluster.kubelet.logs import container_log_path
from devcluster.processes import Process
from tests.e2e.helpers import container_pid, eventually, pid_alive

pytestmark = pytest.mark.e2e

PY = sys.executable


def pod_manifest(name: str, command: list[str], **spec) -> dict:
    container = {"name": "main", "image": "ignored:latest", "command": command}
    container.update(spec.pop("container", {}))
    return {"metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [container], **spec}}


def status_of(pod, container: str = "main"):
    for status in pod.status.container_statuses or []:
        if status.name == container:
            return status
    return None


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def gone(read) -> bool:
    try:
        read()
    except ApiException as exc:
        return exc.status == 404
    return False


def test_statefulset_runs_ready_pods_on_their_own_ips_scales_down_and_is_collected(
        devcluster, k8s_api, namespace):
    core, apps = client.CoreV1Api(k8s_api), client.AppsV1Api(k8s_api)
    port = ports.free_port("0.0.0.0")
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": port}]}})
    apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [{
                    "name": "web", "image": "python:3.11",
                    "command": [PY, "-m", "http.server", str(port), "--bind", "$(POD_IP)"],
                    "env": [{"name": "POD_IP",
                             "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "ports": [{"name": "http", "containerPort": port}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                       "periodSeconds": 1},
                }]},
            },
        },
    })

    def three_ready():
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = [p for p in pods if p.status.phase == "Running" and is_ready(p)]
        return sorted(ready, key=lambda p: p.metadata.name) if len(ready) == 3 else None

    pods = eventually(three_ready, timeout=120, what="3 Running, Ready pods")
    assert [p.metadata.name for p in pods] == ["web-0", "web-1", "web-2"]
    ips = [p.status.pod_ip for p in pods]
    assert len(set(ips)) == 3
    for pod, ip in zip(pods, ips, strict=True):
        assert ip.startswith("127.") and ip != "127.0.0.1"
        assert pod.status.host_ip == "127.0.0.1"
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as response:
            assert response.status == 200
    assert not ports.port_open(port, "127.0.0.1")  # each server is bound to its pod IP only
    pids = {p.metadata.name: container_pid(p) for p in pods}
    assert all(pid_alive(pid) for pid in pids.values())

    apps.patch_namespaced_stateful_set_scale("web", namespace, {"spec": {"replicas": 1}})

    def scaled_down():
        names = [p.metadata.name for p in core.list_namespaced_pod(
            namespace, label_selector="app=web").items]
        return names == ["web-0"] and not pid_alive(pids["web-1"]) and not pid_alive(pids["web-2"])

    eventually(scaled_down, timeout=60, what="scale-down to web-0 with web-1/web-2 stopped")
    assert pid_alive(pids["web-0"])

    apps.delete_namespaced_stateful_set("web", namespace, propagation_policy="Background")
    eventually(lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
               timeout=60, what="the StatefulSet's pods to be garbage-collected")
    eventually(lambda: not pid_alive(pids["web-0"]), timeout=10, what="web-0's process to stop")


def test_a_missing_command_reports_a_waiting_reason_and_a_growing_restart_count(
        devcluster, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(namespace, pod_manifest("missing", ["no-such-command-4711", "x"]))

    def failing_repeatedly():
        status = status_of(core.read_namespaced_pod("missing", namespace))
        if status and status.state.waiting and status.restart_count >= 2:
            return status
        return None

    status = eventually(failing_repeatedly, timeout=60, what="restartCount >= 2")
    assert status.state.waiting.reason == "RunContainerError"
    assert 'exec: "no-such-command-4711": executable file not found' in status.state.waiting.message
    assert status.last_state.terminated.reason == "StartError"
    assert status.last_state.terminated.exit_code == 128
    assert not status.ready
    assert devcluster.kubelet.alive()


def test_a_container_without_command_waits_with_a_clear_message(devcluster, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    manifest = pod_manifest("imageonly", [])
    del manifest["spec"]["containers"][0]["command"]
    core.create_namespaced_pod(namespace, manifest)

    def waiting():
        status = status_of(core.read_namespaced_pod("imageonly", namespace))
        return status if status and status.state.waiting \
            and status.state.waiting.reason == "CreateContainerError" else None

    status = eventually(waiting, timeout=30, what="a CreateContainerError waiting state")
    assert "ignores images" in status.state.waiting.message
    assert core.read_namespaced_pod("imageonly", namespace).status.phase == "Pending"


def test_exit_codes_and_restart_policies(devcluster, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    exit3 = [PY, "-c", "import sys; print('bye'); sys.exit(3)"]
    core.create_namespaced_pod(namespace, pod_manifest("always", exit3))
    core.create_namespaced_pod(namespace, pod_manifest("never", exit3, restartPolicy="Never"))
    core.create_namespaced_pod(namespace, pod_manifest(
        "onfailure", [PY, "-c", "print('done')"], restartPolicy="OnFailure"))

    def crash_looping():
        status = status_of(core.read_namespaced_pod("always", namespace))
        return status if status and status.restart_count >= 1 and status.state.waiting \
            and status.state.waiting.reason == "CrashLoopBackOff" else None

    status = eventually(crash_looping, timeout=60, what="CrashLoopBackOff with restarts")
    assert status.last_state.terminated.exit_code == 3
    assert status.last_state.terminated.reason == "Error"

    never = eventually(lambda: (p := core.read_namespaced_pod("never", namespace))
                       .status.phase == "Failed" and p, timeout=30, what="phase Failed")
    assert status_of(never).state.terminated.exit_code == 3
    assert status_of(never).restart_count == 0
    done = eventually(lambda: (p := core.read_namespaced_pod("onfailure", namespace))
                      .status.phase == "Succeeded" and p, timeout=30, what="phase Succeeded")
    assert status_of(done).state.terminated.reason == "Completed"
    log = container_log_path(devcluster.kubelet_dir, namespace, "always", "main").read_text()
    assert log.count("bye") >= 2  # appended across restarts


def test_environment_from_secrets_config_maps_and_the_downward_api(
        devcluster, k8s_api, namespace, tmp_path):
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "creds"}, "stringData": {"password": "s3cret", "user": "alice"}})
    core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "settings"}, "data": {"mode": "fast", "level": "7"}})
    script = ("import json, os, sys; print(json.dumps("
              "{'env': dict(os.environ), 'argv': sys.argv[1:], 'cwd': os.getcwd()}))")
    core.create_namespaced_pod(namespace, pod_manifest(
        "env", [PY, "-c", script], restartPolicy="Never",
        container={
            "args": ["$(GREETING)", "$(UNDEFINED)", "$$(ESCAPED)"],
            "workingDir": str(tmp_path),
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                        {"secretRef": {"name": "absent", "optional": True}}],
            "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "OPTIONAL", "valueFrom": {"configMapKeyRef": {
                    "name": "settings", "key": "nope", "optional": True}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "GREETING", "value": "hello $(POD_NAME) in $(MODE)"},
            ],
        }))
    pod = eventually(lambda: (p := core.read_namespaced_pod("env", namespace))
                     .status.phase == "Succeeded" and p, timeout=60, what="the env pod to finish")
    output = json.loads(container_log_path(
        devcluster.kubelet_dir, namespace, "env", "main").read_text().splitlines()[-1])
    env = output["env"]
    assert env["PASSWORD"] == "s3cret"
    assert env["MODE"] == "fast"
    assert env["CFG_mode"] == "fast" and env["CFG_level"] == "7"
    assert "OPTIONAL" not in env
    assert env["POD_NAME"] == "env" and env["POD_NAMESPACE"] == namespace
    assert env["POD_UID"] == pod.metadata.uid
    assert env["NODE"] == devcluster.node_name
    assert env["POD_IP"] == pod.status.pod_ip and env["POD_IP"] != "127.0.0.1"
    assert env["HOST_IP"] == "127.0.0.1"
    assert env["GREETING"] == "hello env in fast"
    assert env["PATH"] and env["HOSTNAME"] == "env"
    assert output["argv"] == ["hello env in fast", "$(UNDEFINED)", "$(ESCAPED)"]
    assert output["cwd"] == str(tmp_path)


def test_a_missing_secret_is_a_config_error_until_it_exists(devcluster, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(namespace, pod_manifest(
        "late", [PY, "-c", "import os; print(os.environ['TOKEN'])"], restartPolicy="Never",
        container={"env": [{"name": "TOKEN", "valueFrom": {
            "secretKeyRef": {"name": "later", "key": "token"}}}]}))

    def config_error():
        status = status_of(core.read_namespaced_pod("late", namespace))
        return status and status.state.waiting \
            and status.state.waiting.reason == "CreateContainerConfigError"

    eventually(config_error, timeout=30, what="CreateContainerConfigError")
    core.create_namespaced_secret(namespace, {"metadata": {"name": "later"},
                                              "stringData": {"token": "t0k3n"}})
    eventually(lambda: core.read_namespaced_pod("late", namespace).status.phase == "Succeeded",
               timeout=30, what="the pod to run once the secret exists")
    log = container_log_path(devcluster.kubelet_dir, namespace, "late", "main")
    assert log.read_text().strip() == "t0k3n"


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
        devcluster, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    script = ("import signal, time\n"
              "signal.signal(signal.SIGTERM, lambda *a: print('SIGTERM ignored', flush=True))\n"
              "print('ready', flush=True)\n"
              "while True: time.sleep(0.1)\n")
    core.create_namespaced_pod(namespace, pod_manifest(
        "stubborn", [PY, "-c", script], terminationGracePeriodSeconds=3))
    log = container_log_path(devcluster.kubelet_dir, namespace, "stubborn", "main")
    pod = eventually(lambda: (p := core.read_namespaced_pod("stubborn", namespace))
                     and container_pid(p) and log.exists() and "ready" in log.read_text() and p,
                     timeout=60, what="the stubborn pod running")
    pid = container_pid(pod)

    core.delete_namespaced_pod("stubborn", namespace)

    eventually(lambda: gone(lambda: core.read_namespaced_pod("stubborn", namespace)),
               timeout=60, what="the pod deletion to complete")
    assert not pid_alive(pid)
    assert "SIGTERM ignored" in log.read_text()


def test_probes_gate_readiness_and_a_failing_liveness_probe_restarts(
        devcluster, k8s_api, namespace):
    core = client.CoreV1Api(k8s_api)
    port = ports.free_port("0.0.0.0")
    server = [PY, "-m", "http.server", str(port), "--bind", "$(POD_IP)"]
    pod_ip_env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    sleeper = [PY, "-c", "import time; time.sleep(3600)"]
    core.create_namespaced_pod(namespace, pod_manifest("tcp", server, container={
        "env": pod_ip_env,
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}))
    core.create_namespaced_pod(namespace, pod_manifest("unready", sleeper, container={
        "readinessProbe": {"exec": {"command": [PY, "-c", "raise SystemExit(1)"]},
                           "periodSeconds": 1}}))
    core.create_namespaced_pod(namespace, pod_manifest(
        "unhealthy", sleeper, terminationGracePeriodSeconds=2, container={
            "livenessProbe": {"exec": {"command": [PY, "-c", "raise SystemExit(1)"]},
                              "periodSeconds": 1, "failureThreshold": 2}}))

    eventually(lambda: is_ready(core.read_namespaced_pod("tcp", namespace)), timeout=60,
               what="the tcpSocket-probed pod Ready")

    def restarted():
        status = status_of(core.read_namespaced_pod("unhealthy", namespace))
        return status if status and status.restart_count >= 1 else None

    status = eventually(restarted, timeout=60, what="a liveness restart")
    assert "liveness" in status.last_state.terminated.message
    unready = core.read_namespaced_pod("unready", namespace)
    assert unready.status.phase == "Running" and not is_ready(unready)
    assert not status_of(unready).ready and status_of(unready).state.running


def test_kubelet_sigterm_stops_every_pod_process(devcluster, k8s_api, namespace, tmp_path):
    """A second kubelet (its own node): on SIGTERM it stops its pods' whole process groups."""
    core = client.CoreV1Api(k8s_api)
    node = "extra-node"
    credentials = devcluster.control_plane.issue_node_credentials(node)
    kubelet = Process("kubelet-extra", [PY, "-m", "devcluster.kubelet", f"--kubeconfig={credentials}",
                                        f"--node-name={node}", f"--state-dir={tmp_path / 'state'}"],
                      tmp_path / "kubelet.log").start()
    try:
        eventually(lambda: any(c.type == "Ready" and c.status == "True"
                               for c in core.read_node(node).status.conditions),
                   timeout=30, what="the extra node Ready")
        script = ("import subprocess, time\n"
                  "child = subprocess.Popen(['sleep', '3600'])\n"
                  "print(child.pid, flush=True)\n"
                  "time.sleep(3600)\n")
        core.create_namespaced_pod(namespace, pod_manifest("pinned", [PY, "-c", script],
                                                           nodeName=node))
        log = container_log_path(tmp_path / "state", namespace, "pinned", "main")
        pod = eventually(lambda: (p := core.read_namespaced_pod("pinned", namespace))
                         and container_pid(p) and log.exists() and log.read_text().strip() and p,
                         timeout=60, what="the pinned pod running")
        pid, child = container_pid(pod), int(log.read_text().split()[0])
        assert pid_alive(pid) and pid_alive(child)

        kubelet.stop(grace=15)

        assert kubelet.popen.returncode == 0
        assert not pid_alive(pid)
        assert not pid_alive(child)
    finally:
        kubelet.stop()
        with contextlib.suppress(ApiException):
            core.delete_namespaced_pod("pinned", namespace, grace_period_seconds=0)
        core.delete_node(node)


def test_init_containers_run_first_and_host_network_pods_use_the_host_address(
        devcluster, k8s_api, namespace, tmp_path):
    core = client.CoreV1Api(k8s_api)
    marker = tmp_path / "marker"
    core.create_namespaced_pod(namespace, pod_manifest(
        "staged", [PY, "-c", f"print(open({str(marker)!r}).read())"], restartPolicy="Never",
        initContainers=[
            {"name": "prepare", "image": "ignored",
             "command": [PY, "-c", f"open({str(marker)!r}, 'w').write('prepared')"]},
            {"name": "sidecar", "image": "ignored", "restartPolicy": "Always",
             "command": [PY, "-c", "import time; time.sleep(3600)"]},
        ]))
    core.create_namespaced_pod(namespace, pod_manifest(
        "hostnet", [PY, "-c", "import time; time.sleep(3600)"], hostNetwork=True))

    pod = eventually(lambda: (p := core.read_namespaced_pod("staged", namespace))
                     .status.phase == "Succeeded" and p, timeout=60, what="the staged pod to finish")
    init = {s.name: s for s in pod.status.init_container_statuses}
    assert init["prepare"].state.terminated.exit_code == 0
    log = container_log_path(devcluster.kubelet_dir, namespace, "staged", "main")
    assert log.read_text().strip() == "prepared"
    eventually(lambda: core.read_namespaced_pod("staged", namespace).status
               .init_container_statuses[1].state.terminated, timeout=30,
               what="the sidecar to be stopped after the main container finished")

    hostnet = eventually(lambda: (p := core.read_namespaced_pod("hostnet", namespace))
                         .status.phase == "Running" and p, timeout=30, what="the hostNetwork pod")
    assert hostnet.status.pod_ip == "127.0.0.1"
