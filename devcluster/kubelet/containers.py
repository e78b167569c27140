"""Containers as local processes: spawning, killing, restart back-off, and per-container state.

Each container runs as its own process group (`start_new_session`), so signals reach the
command and everything it forks; when the main process exits, the rest of its group is
killed too, like a container's cgroup. Output (stdout and stderr) is appended to the
container's log file across restarts.

Restart back-off: 1s after the first failure, doubling, capped at 60s (`BACKOFF_CAP`); a run
that lasted at least `BACKOFF_RESET_AFTER` (120s) resets it. While waiting, the container
shows `CrashLoopBackOff` (or `RunContainerError` when the command could not be started).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from devcluster.kubelet.probes import ProbeRunner, ProbeTarget

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 1.0
BACKOFF_CAP = 60.0
BACKOFF_RESET_AFTER = 120.0
CONFIG_RETRY = 2.0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BackOff:
    """Exponential restart delay: initial, doubling, capped."""

    def __init__(self, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_CAP) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        delay = min(self.initial * (2 ** min(self.failures, 30)), self.cap)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


def exec_error_message(exc: OSError, argv0: str, cwd: str | None) -> str:
    """The error a container runtime would report for a failed exec."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError) and cwd and exc.filename == cwd:
        return f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory'
    if isinstance(exc, FileNotFoundError):
        if "/" in argv0:
            return f'exec: "{argv0}": stat {argv0}: no such file or directory'
        return f'exec: "{argv0}": executable file not found in $PATH'
    if isinstance(exc, PermissionError):
        return f'exec: "{argv0}": permission denied'
    return f'exec: "{argv0}": {exc.strerror or exc}'


def spawn(argv: list[str], env: dict[str, str], cwd: str | None, log_path: Path) -> subprocess.Popen:
    """Start `argv` in a new process group with output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, cwd=cwd or None, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
        )


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessRegistry:
    """One file per live process group under `run_dir`, so groups left behind by a kubelet
    that died without cleaning up (SIGKILL) can be killed on the next start or by `DevCluster`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def add(self, pgid: int, label: str) -> None:
        (self.run_dir / str(pgid)).write_text(label)

    def remove(self, pgid: int) -> None:
        (self.run_dir / str(pgid)).unlink(missing_ok=True)

    def kill_leftovers(self) -> list[int]:
        return kill_registered(self.run_dir)


def kill_registered(run_dir: Path) -> list[int]:
    """SIGKILL every process group recorded in `run_dir` that still exists; clear the records."""
    killed = []
    if not run_dir.is_dir():
        return killed
    for entry in run_dir.iterdir():
        if entry.name.isdigit():
            pgid = int(entry.name)
            if group_alive(pgid):
                signal_group(pgid, signal.SIGKILL)
                killed.append(pgid)
        entry.unlink(missing_ok=True)
    return killed


class ContainerRunner:
    """The lifecycle of one container of one pod (main loop in `PodWorker`)."""

    def __init__(
        self, spec: dict, *, log_path: Path, restart_policy: str, pod_label: str,
        registry: ProcessRegistry, on_change: Callable[[], None], kind: str = "regular",
        restart_count: int = 0, termination_grace: float = 30.0,
    ) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.kind = kind  # "regular", "init" or "sidecar" (restartable init container)
        self.log_path = log_path
        self.restart_policy = restart_policy
        self.pod_label = pod_label
        self.registry = registry
        self.on_change = on_change
        self.backoff = BackOff()
        self.attempts = 0
        self.base_restart_count = restart_count
        self.termination_grace = termination_grace
        self.state: dict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict = {}
        self.popen: subprocess.Popen | None = None
        self.container_id = ""
        self.next_start = 0.0
        self.run_started = 0.0
        self.kill_deadline: float | None = None
        self.kill_message = ""
        self.stopping = False
        self.done = False
        self.probes: dict[str, ProbeRunner] = {}
        self._lock = threading.Lock()

    # --- derived state -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.popen is not None

    @property
    def restart_count(self) -> int:
        return self.base_restart_count + max(0, self.attempts - 1)

    @property
    def started(self) -> bool:
        if not self.running:
            return False
        startup = self.probes.get("startup")
        return startup is None or startup.result

    @property
    def ready(self) -> bool:
        if not self.started or self.kill_deadline is not None:
            return False
        readiness = self.probes.get("readiness")
        return readiness is None or readiness.result

    @property
    def succeeded(self) -> bool:
        return self.done and self.state.get("terminated", {}).get("exitCode") == 0

    def wants_start(self, now: float) -> bool:
        return not (self.running or self.done or self.stopping) and now >= self.next_start

    def status(self) -> dict:
        """This container's `containerStatuses` entry."""
        status = {
            "name": self.name,
            "image": self.spec.get("image") or "",
            "imageID": "",
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status

    # --- transitions -----------------------------------------------------------------------
    def wait(self, reason: str, message: str, retry_in: float | None = CONFIG_RETRY) -> None:
        """Cannot start yet (configuration problem); try again after `retry_in` seconds."""
        self.state = {"waiting": {"reason": reason, "message": message}}
        self.next_start = time.monotonic() + retry_in if retry_in is not None else float("inf")

    def start(self, argv: list[str], env: dict[str, str], cwd: str | None,
              target: ProbeTarget) -> None:
        self.attempts += 1
        started_at = now_iso()
        try:
            popen = spawn(argv, env, cwd, self.log_path)
        except OSError as exc:
            message = exec_error_message(exc, argv[0], cwd)
            log.info("%s/%s failed to start: %s", self.pod_label, self.name, message)
            terminated = {"exitCode": 128, "reason": "StartError", "message": message,
                          "startedAt": started_at, "finishedAt": now_iso()}
            self._after_exit(terminated, failed=True, waiting_reason="RunContainerError",
                             message=message)
            return
        self.popen = popen
        self.registry.add(popen.pid, f"{self.pod_label}/{self.name}")
        self.container_id = f"process://{popen.pid}"
        self.run_started = time.monotonic()
        self.kill_deadline = None
        self.state = {"running": {"startedAt": started_at}}
        log.info("started %s/%s as pid %d: %s", self.pod_label, self.name, popen.pid, argv)
        self._start_probes(target)

    def _start_probes(self, target: ProbeTarget) -> None:
        label = f"{self.pod_label}/{self.name}"
        startup = None
        if self.spec.get("startupProbe"):
            startup = ProbeRunner("startup", self.spec["startupProbe"], target, self.on_change,
                                  label=label)
            self.probes["startup"] = startup

        def gate() -> bool:
            return startup is None or startup.result

        for kind in ("readiness", "liveness"):
            probe = self.spec.get(f"{kind}Probe")
            if probe and not (kind == "readiness" and self.kind == "init"):
                self.probes[kind] = ProbeRunner(kind, probe, target, self.on_change, gate, label)
        for runner in self.probes.values():
            runner.start()

    def _stop_probes(self) -> None:
        for runner in self.probes.values():
            runner.stop()
        self.probes = {}

    def poll(self, now: float) -> bool:
        """Check the process; True when the container's state changed."""
        with self._lock:
            if self.popen is None:
                return False
            code = self.popen.poll()
            if code is None:
                self._check_health(now)
                return False
            pid = self.popen.pid
            signal_group(pid, signal.SIGKILL)  # the rest of the "container"
            self.registry.remove(pid)
            self.popen = None
            self._stop_probes()
            exit_code = code if code >= 0 else 128 - code
            terminated = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": self.state.get("running", {}).get("startedAt", now_iso()),
                "finishedAt": now_iso(),
                "containerID": self.container_id,
            }
            if code < 0:
                terminated["signal"] = -code
            if self.kill_message:
                terminated["message"] = self.kill_message
            self.kill_deadline = None
            self.kill_message = ""
            log.info("%s/%s (pid %d) exited with code %d", self.pod_label, self.name, pid, exit_code)
            if now - self.run_started >= BACKOFF_RESET_AFTER:
                self.backoff.reset()
            self._after_exit(terminated, failed=exit_code != 0, waiting_reason="CrashLoopBackOff")
            return True

    def _check_health(self, now: float) -> None:
        assert self.popen is not None
        if self.kill_deadline is not None:
            if now >= self.kill_deadline:
                log.info("%s/%s (pid %d) did not stop in time: SIGKILL", self.pod_label,
                         self.name, self.popen.pid)
                signal_group(self.popen.pid, signal.SIGKILL)
                self.kill_deadline = float("inf")
            return
        for kind in ("startup", "liveness"):
            runner = self.probes.get(kind)
            if runner is not None and not runner.result and (
                    kind == "liveness" or runner.tracker.failures >= runner.tracker.failure_threshold):
                grace = runner.probe.get("terminationGracePeriodSeconds")
                self._kill(self.termination_grace if grace is None else float(grace),
                           f"Container {self.name} failed {kind} probe, will be restarted")
                return

    def _kill(self, grace: float, message: str = "") -> None:
        assert self.popen is not None
        self.kill_message = message
        signal_group(self.popen.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        self.kill_deadline = time.monotonic() + max(grace, 0)

    def _after_exit(self, terminated: dict, *, failed: bool, waiting_reason: str,
                    message: str = "") -> None:
        restart = not self.stopping and (
            self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and failed))
        if restart:
            delay = self.backoff.next()
            self.next_start = time.monotonic() + delay
            self.last_state = {"terminated": terminated}
            note = f"back-off {delay:g}s restarting failed container={self.name} pod={self.pod_label}"
            self.state = {"waiting": {"reason": waiting_reason,
                                      "message": f"{message}; {note}" if message else note}}
        else:
            if "terminated" in self.state:
                self.last_state = {"terminated": self.state["terminated"]}
            self.state = {"terminated": terminated}
            self.done = True

    def stop(self, grace: float) -> None:
        """Terminate for good (pod deletion/shutdown): SIGTERM now, SIGKILL after `grace`."""
        with self._lock:
            self.stopping = True
            if self.popen is None:
                self.done = True
                return
            if self.kill_deadline is None:
                self._kill(grace)
            else:
                self.kill_deadline = min(self.kill_deadline, time.monotonic() + max(grace, 0))

    def kill_now(self) -> None:
        with self._lock:
            self.stopping = True
            if self.popen is not None:
                signal_group(self.popen.pid, signal.SIGKILL)
