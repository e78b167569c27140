"""One thread per pod: start its containers (init containers first), restart them per
`restartPolicy`, report status, and tear everything down when the pod is deleted."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from devcluster.kubelet import env as envmod
from devcluster.kubelet import status as statusmod
from devcluster.kubelet.addresses import AddressAllocator
from devcluster.kubelet.api import ApiError, Client
from devcluster.kubelet.containers import ContainerRunner, ProcessRegistry, now_iso
from devcluster.kubelet.logs import container_log_path
from devcluster.kubelet.probes import ProbeTarget

log = logging.getLogger(__name__)

MIN_KILL_GRACE = 2.0  # like the kubelet's minimumGracePeriodInSeconds
NO_COMMAND = (
    "container has no command: the devcluster process kubelet ignores images (image {image!r}) "
    "and runs `command` + `args` as a local process, so the pod spec must set `command`"
)


@dataclass
class WorkerContext:
    """What every pod worker shares: the API client, the node, addresses, process records."""

    client: Client
    node_name: str
    state_dir: Path
    addresses: AddressAllocator
    registry: ProcessRegistry
    host_ip: str = "127.0.0.1"
    base_env: dict[str, str] = field(default_factory=dict)
    node_allocatable: dict[str, str] = field(default_factory=dict)

    def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}", "secret", name)
        return None if obj is None else envmod.decode_secret(obj.get("data"))

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        obj = self._get(f"/api/v1/namespaces/{namespace}/configmaps/{name}", "configmap", name)
        return None if obj is None else envmod.configmap_data(obj)

    def _get(self, path: str, kind: str, name: str) -> dict | None:
        try:
            return self.client.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            # 403 right after a pod is bound: the Node authorizer's graph has not seen the
            # pod yet. Surfaces as CreateContainerConfigError and is retried.
            raise envmod.ConfigError(f'cannot read {kind} "{name}": {exc}') from exc


def base_environment(server: str) -> dict[str, str]:
    """The kubelet's own PATH/HOME/LANG (so local commands resolve) plus the
    KUBERNETES_SERVICE_* variables every container gets."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    base.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    hostport = server.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if host and port.isdigit():
        base.update({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
                     "KUBERNETES_SERVICE_PORT_HTTPS": port})
    return base


def grace_seconds(pod: dict) -> float:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds")
    return max(float(30 if grace is None else grace), MIN_KILL_GRACE)


class PodWorker:
    def __init__(self, ctx: WorkerContext, pod: dict) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.label = f"{self.namespace}/{self.name}"
        self.finished = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._vanished = False
        self._shutdown_grace: float | None = None
        self._terminating = False
        self._initialized = False
        self._last_status: dict | None = None
        self._conditions: list[dict] | None = None
        self._retry_patch_at = 0.0
        self.pod_ip = ""
        self.init_runners: list[ContainerRunner] = []
        self.runners: list[ContainerRunner] = []
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.label}", daemon=True)

    # --- called by the pod manager (other threads) ------------------------------------------
    def start(self) -> PodWorker:
        self.thread.start()
        return self

    def update(self, pod: dict) -> None:
        with self._lock:
            self.pod = pod
        self.wake()

    def vanish(self) -> None:
        """The pod is gone from the API: stop its processes, report nothing more."""
        self._vanished = True
        self.wake()

    def shutdown(self, grace: float) -> None:
        """The kubelet is exiting: stop the processes within `grace`, leave the API alone."""
        self._shutdown_grace = grace
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def all_runners(self) -> list[ContainerRunner]:
        return self.init_runners + self.runners

    # --- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._main()
        except Exception:
            log.exception("pod worker %s crashed; killing its processes", self.label)
            for runner in self.all_runners():
                runner.kill_now()
        finally:
            self._reap_all(deadline=time.monotonic() + 5)
            self.ctx.addresses.release(self.uid)
            self.finished.set()

    def _main(self) -> None:
        pod = self.pod
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            self._idle_until_deleted()
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._complete_deletion()
            return
        self._setup()
        while True:
            now = time.monotonic()
            if self._shutdown_grace is not None:
                for runner in self.all_runners():
                    runner.stop(self._shutdown_grace)
                self._poll_all(now)
                if not any(r.running for r in self.all_runners()):
                    return
            else:
                if self._vanished or self.pod["metadata"].get("deletionTimestamp"):
                    self._terminating = True
                    grace = grace_seconds(self.pod)
                    for runner in self.all_runners():
                        runner.stop(grace)
                self._poll_all(now)
                if not self._terminating:
                    self._progress(now)
                self._report()
                if self._terminating and not any(r.running for r in self.all_runners()):
                    self._complete_deletion()
                    return
            self._sleep(now)

    def _sleep(self, now: float) -> None:
        timeout = 5.0
        for runner in self.all_runners():
            if runner.running:
                timeout = 1.0
                if runner.kill_deadline is not None and runner.kill_deadline != float("inf"):
                    timeout = min(timeout, max(runner.kill_deadline - now, 0.05))
            elif not (runner.done or runner.stopping):
                timeout = min(timeout, max(runner.next_start - now, 0.05))
        if self._retry_patch_at:
            timeout = min(timeout, max(self._retry_patch_at - now, 0.05))
        self._wake.wait(timeout)
        self._wake.clear()

    def _setup(self) -> None:
        pod = self.pod
        spec, status = pod["spec"], pod.get("status") or {}
        if spec.get("hostNetwork"):
            self.pod_ip = self.ctx.host_ip  # as in Kubernetes: the node's address
        else:
            self.pod_ip = self.ctx.addresses.allocate(self.uid, preferred=status.get("podIP"))
        self.start_time = status.get("startTime") or now_iso()
        policy = spec.get("restartPolicy") or "Always"
        grace = float(spec.get("terminationGracePeriodSeconds") or 30)
        previous = {s["name"]: s for s in (status.get("containerStatuses") or [])
                    + (status.get("initContainerStatuses") or [])}

        def runner(container: dict, kind: str, restart_policy: str) -> ContainerRunner:
            old = previous.get(container["name"])
            return ContainerRunner(
                container, kind=kind, restart_policy=restart_policy, pod_label=self.label,
                log_path=container_log_path(self.ctx.state_dir, self.namespace, self.name,
                                            container["name"]),
                registry=self.ctx.registry, on_change=self.wake, termination_grace=grace,
                restart_count=old["restartCount"] + 1 if old and old.get("containerID") else 0,
            )

        for container in spec.get("initContainers") or []:
            if statusmod.is_sidecar(container):
                self.init_runners.append(runner(container, "sidecar", "Always"))
            else:
                self.init_runners.append(
                    runner(container, "init", "Never" if policy == "Never" else "OnFailure"))
        self.runners = [runner(c, "regular", policy) for c in spec.get("containers") or []]
        log.info("pod %s (uid %s) gets address %s", self.label, self.uid, self.pod_ip)
        self._report()

    def _poll_all(self, now: float) -> bool:
        changed = False
        for runner in self.all_runners():
            changed |= runner.poll(now)
        return changed

    def _progress(self, now: float) -> None:
        """Start whatever is due: init containers one at a time, then the main containers."""
        for runner in self.init_runners:
            if runner.kind == "sidecar":
                if runner.wants_start(now):
                    self._start(runner)
                if not (runner.started or self._initialized):
                    return
                continue
            if runner.succeeded or self._initialized:
                continue
            if runner.wants_start(now):
                self._start(runner)
            return
        self._initialized = True
        for runner in self.runners:
            if runner.wants_start(now):
                self._start(runner)
        if self.runners and all(r.done for r in self.runners):
            # The main containers have finished for good: sidecars are stopped, as in Kubernetes.
            for runner in self.init_runners:
                if runner.kind == "sidecar" and not runner.done:
                    runner.stop(runner.termination_grace)

    def _start(self, runner: ContainerRunner) -> None:
        spec = runner.spec
        if not spec.get("command"):
            runner.wait("CreateContainerError", NO_COMMAND.format(image=spec.get("image", "")),
                        retry_in=None)
            return
        context = envmod.PodContext(
            pod=self.pod, pod_ip=self.pod_ip, host_ip=self.ctx.host_ip,
            base_env={**self.ctx.base_env,
                      "HOSTNAME": self.pod["spec"].get("hostname") or self.name},
            node_allocatable=self.ctx.node_allocatable,
        )
        try:
            environment = envmod.resolve_env(context, spec, self.ctx.get_secret,
                                             self.ctx.get_configmap)
        except envmod.ConfigError as exc:
            runner.wait("CreateContainerConfigError", str(exc))
            return
        except Exception as exc:  # API unreachable etc.: retry like any config error
            runner.wait("CreateContainerConfigError", f"{type(exc).__name__}: {exc}")
            return
        argv = envmod.expand_command(spec, environment)
        named_ports = {p["name"]: int(p["containerPort"]) for p in spec.get("ports") or []
                       if p.get("name") and p.get("containerPort")}
        target = ProbeTarget(pod_ip=self.pod_ip, named_ports=named_ports, env=environment,
                             cwd=spec.get("workingDir"))
        runner.start(argv, environment, spec.get("workingDir"), target)
        if runner.popen is not None:
            popen = runner.popen

            def wait_for_exit() -> None:
                popen.wait()
                self.wake()

            threading.Thread(target=wait_for_exit, name=f"wait-{popen.pid}", daemon=True).start()

    # --- status -----------------------------------------------------------------------------
    def _build_status(self, terminal: bool = False) -> dict:
        status = statusmod.build_status(
            self.pod,
            init_statuses=[r.status() for r in self.init_runners],
            statuses=[r.status() for r in self.runners],
            pod_ip=self.pod_ip, host_ip=self.ctx.host_ip, start_time=self.start_time,
            now=now_iso(), terminal=terminal, previous_conditions=self._conditions,
        )
        return status

    def _report(self, terminal: bool = False) -> None:
        if self._vanished:
            return
        status = self._build_status(terminal or self._terminating)
        if status == self._last_status:
            return
        if self._retry_patch_at and time.monotonic() < self._retry_patch_at:
            return
        try:
            self.ctx.client.patch(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                {"metadata": {"uid": self.uid}, "status": status},
            )
        except ApiError as exc:
            if exc.status in (404, 409, 422) and self._pod_is_gone():
                log.info("pod %s (uid %s) is gone; stopping it", self.label, self.uid)
                self._vanished = True
                return
            log.warning("status update of %s failed: %s", self.label, exc)
            self._retry_patch_at = time.monotonic() + 1.0
            return
        except Exception as exc:  # connection trouble: retry shortly
            log.warning("status update of %s failed: %s", self.label, exc)
            self._retry_patch_at = time.monotonic() + 1.0
            return
        self._retry_patch_at = 0.0
        self._last_status = status
        self._conditions = status["conditions"]

    def _pod_is_gone(self) -> bool:
        try:
            current = self.ctx.client.get(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}")
        except ApiError as exc:
            # The Node authorizer answers 403 for pods not bound to this node, which
            # includes pods that no longer exist.
            return exc.status in (403, 404)
        return current["metadata"].get("uid") != self.uid

    # --- teardown ---------------------------------------------------------------------------
    def _complete_deletion(self) -> None:
        """All processes are gone: publish the final status, then remove the pod object."""
        if self._vanished:
            return
        if self.runners or self.init_runners:
            self._retry_patch_at = 0.0
            self._report(terminal=True)
        if self._vanished:
            return
        while self._shutdown_grace is None and not self._vanished:
            try:
                self.ctx.client.delete(
                    f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                )
                log.info("pod %s (uid %s) deleted", self.label, self.uid)
                return
            except ApiError as exc:
                if exc.status in (404, 409):  # already gone, or a new pod under the same name
                    return
                log.warning("deleting pod %s failed (will retry): %s", self.label, exc)
            except Exception as exc:  # connection trouble: retry
                log.warning("deleting pod %s failed (will retry): %s", self.label, exc)
            self._wake.wait(1.0)
            self._wake.clear()

    def _idle_until_deleted(self) -> None:
        """A pod that had already finished before this worker saw it: nothing runs; remove it
        when it is deleted."""
        while self._shutdown_grace is None and not self._vanished:
            if self.pod["metadata"].get("deletionTimestamp"):
                self._complete_deletion()
                return
            self._wake.wait(30)
            self._wake.clear()

    def _reap_all(self, deadline: float) -> None:
        """Last line of defence: make sure no process of this pod survives the worker."""
        while any(r.running for r in self.all_runners()) and time.monotonic() < deadline:
            for runner in self.all_runners():
                if runner.running:
                    runner.kill_now()
            self._poll_all(time.monotonic())
            time.sleep(0.05)
