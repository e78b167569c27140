"""Readiness, liveness and startup probes: one small thread per probe, as in the kubelet.

Supported handlers: `httpGet` (against the pod IP unless `host` is set; numeric or named
port; 200-399 is success), `tcpSocket` and `exec` (run locally with the container's
environment and working directory). `grpc` probes need an HTTP/2 gRPC client the devcluster
does not ship; such a probe always fails with a message saying so.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class ProbeTarget:
    pod_ip: str
    named_ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


def resolve_port(port: int | str | None, target: ProbeTarget) -> int:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    if isinstance(port, str) and port in target.named_ports:
        return target.named_ports[port]
    raise ValueError(f"port {port!r} is neither a number nor a named container port")


def run_probe(probe: dict, target: ProbeTarget) -> tuple[bool, str]:
    """Run one probe attempt; (success, message)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "httpGet" in probe:
            return _http(probe["httpGet"], target, timeout)
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            host = spec.get("host") or target.pod_ip
            port = resolve_port(spec.get("port"), target)
            with socket.create_connection((host, port), timeout=timeout):
                return True, ""
        if "exec" in probe:
            command = probe["exec"].get("command") or []
            result = subprocess.run(
                command, env=target.env, cwd=target.cwd, stdin=subprocess.DEVNULL,
                capture_output=True, timeout=timeout, start_new_session=True,
            )
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            return result.returncode == 0, output[-1024:]
        if "grpc" in probe:
            return False, "gRPC probes are not supported by the devcluster process kubelet"
        return False, "probe has no handler"
    except subprocess.TimeoutExpired:
        return False, f"command timed out after {timeout:g}s"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _http(spec: dict, target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    host = spec.get("host") or target.pod_ip
    port = resolve_port(spec.get("port"), target)
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    if (spec.get("scheme") or "HTTP").upper() == "HTTPS":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": "kube-probe/1.34", "Accept": "*/*"}
    for header in spec.get("httpHeaders") or []:
        headers[header["name"]] = header.get("value", "")
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read(1024).decode(errors="replace")
    finally:
        conn.close()
    if 200 <= response.status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {response.status} {body[:200]}".strip()


class ProbeTracker:
    """Success/failure thresholds of one probe (pure state, no I/O)."""

    def __init__(self, probe: dict, kind: str) -> None:
        self.kind = kind
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        # Liveness starts out "alive"; readiness and startup start out "not yet".
        self.result = kind == "liveness"
        self.successes = 0
        self.failures = 0
        self.message = ""

    def record(self, ok: bool, message: str = "") -> bool:
        """Count one attempt; True when the probe's result flipped."""
        before = self.result
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            self.message = message
            if self.failures >= self.failure_threshold:
                self.result = False
        return self.result != before


class ProbeRunner:
    """Probes a container on its own thread until stopped; calls `on_change` on flips.

    `gate` (the startup probe's "has succeeded" check) holds liveness/readiness probing back
    until the container has started, as the kubelet does."""

    def __init__(
        self, kind: str, probe: dict, target: ProbeTarget, on_change: Callable[[], None],
        gate: Callable[[], bool] | None = None, label: str = "",
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.target = target
        self.tracker = ProbeTracker(probe, kind)
        self._on_change = on_change
        self._gate = gate
        self._label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{kind}-{label}",
                                        daemon=True)

    @property
    def result(self) -> bool:
        return self.tracker.result

    def start(self) -> ProbeRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        period = float(self.probe.get("periodSeconds") or 10)
        if self._stop.wait(float(self.probe.get("initialDelaySeconds") or 0)):
            return
        while not self._stop.is_set():
            if self._gate is None or self._gate():
                ok, message = run_probe(self.probe, self.target)
                if self._stop.is_set():
                    return
                if self.tracker.record(ok, message):
                    log.info("%s probe of %s: %s %s", self.kind, self._label,
                             "success" if self.tracker.result else "failure", message)
                    self._on_change()
                if self.kind == "startup" and self.tracker.result:
                    return  # a startup probe stops once it has succeeded
            self._stop.wait(period)
