"""devcluster.kubelet.containers: back-off, exec errors, and one container's lifecycle."""

import os
import signal
import subprocess
import sys
import time

import pytest

from devcluster.kubelet.containers import (
    BackOff,
    ContainerRunner,
    ProcessRegistry,
    exec_error_message,
    kill_registered,
)
from devcluster.kubelet.probes import ProbeTarget


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = BackOff(initial=1, cap=60)
    assert [backoff.next() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.next() == 1


def test_backoff_survives_many_failures():
    backoff = BackOff(initial=1, cap=60)
    for _ in range(5000):
        delay = backoff.next()
    assert delay == 60


@pytest.mark.parametrize(("exc", "argv0", "cwd", "message"), [
    (FileNotFoundError(2, "No such file", "nope"), "nope", None,
     'exec: "nope": executable file not found in $PATH'),
    (FileNotFoundError(2, "No such file", "/x/nope"), "/x/nope", None,
     'exec: "/x/nope": stat /x/nope: no such file or directory'),
    (FileNotFoundError(2, "No such file", "/missing"), "ls", "/missing",
     'chdir to cwd ("/missing") set in config.json failed: no such file or directory'),
    (PermissionError(13, "Permission denied", "/etc/hosts"), "/etc/hosts", None,
     'exec: "/etc/hosts": permission denied'),
])
def test_exec_error_messages(exc, argv0, cwd, message):
    assert exec_error_message(exc, argv0, cwd) == message


@pytest.fixture
def make_runner(tmp_path):
    runners = []

    def make(policy="Always", **spec):
        runner = ContainerRunner(
            {"name": "c", "image": "img", **spec}, log_path=tmp_path / "c.log",
            restart_policy=policy, pod_label="ns/p", registry=ProcessRegistry(tmp_path / "run"),
            on_change=lambda: None, termination_grace=5,
        )
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.kill_now()
        if runner.popen is not None:
            runner.popen.wait(5)


def run_until(runner, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"state: {runner.state}"
        runner.poll(time.monotonic())
        time.sleep(0.02)


def start(runner, argv, env=None, cwd=None):
    runner.start(argv, env or {"PATH": os.environ["PATH"]}, cwd, ProbeTarget(pod_ip="127.0.0.1"))


def test_a_crashing_container_waits_in_crash_loop_back_off(make_runner, tmp_path):
    runner = make_runner("Always")
    start(runner, [sys.executable, "-c", "print('out'); import sys; sys.exit(3)"])
    assert runner.running and runner.container_id == f"process://{runner.popen.pid}"
    run_until(runner, lambda: not runner.running)
    assert runner.state["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off 1s" in runner.state["waiting"]["message"]
    assert runner.last_state["terminated"]["exitCode"] == 3
    assert runner.restart_count == 0 and not runner.done
    assert (tmp_path / "c.log").read_text() == "out\n"
    assert not list((tmp_path / "run").iterdir())


def test_a_missing_command_is_a_run_container_error_and_counts_restarts(make_runner):
    runner = make_runner("Always")
    for _ in range(3):
        start(runner, ["no-such-command-4711"])
    assert runner.state["waiting"]["reason"] == "RunContainerError"
    assert 'executable file not found in $PATH' in runner.state["waiting"]["message"]
    assert runner.last_state["terminated"]["reason"] == "StartError"
    assert runner.restart_count == 2


def test_never_and_on_failure_policies(make_runner):
    never = make_runner("Never")
    start(never, [sys.executable, "-c", "raise SystemExit(1)"])
    run_until(never, lambda: never.done)
    assert never.state["terminated"]["exitCode"] == 1 and not never.succeeded

    ok = make_runner("OnFailure")
    start(ok, [sys.executable, "-c", "pass"])
    run_until(ok, lambda: ok.done)
    assert ok.succeeded and ok.state["terminated"]["reason"] == "Completed"


def test_stop_escalates_to_sigkill_and_takes_the_whole_group(make_runner, tmp_path):
    runner = make_runner("Always")
    script = ("import signal, subprocess, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "child = subprocess.Popen(['sleep', '60'])\n"
              "print(child.pid, flush=True)\n"
              "time.sleep(60)\n")
    start(runner, [sys.executable, "-c", script])
    log = tmp_path / "c.log"
    run_until(runner, lambda: log.exists() and log.read_text().strip())
    child = int(log.read_text())
    runner.stop(grace=0.5)
    run_until(runner, lambda: not runner.running)
    assert runner.state["terminated"]["exitCode"] == 128 + signal.SIGKILL
    assert runner.done
    deadline = time.monotonic() + 5
    while _is_running(child):  # the forked child went down with the group
        assert time.monotonic() < deadline, f"child {child} survived"
        time.sleep(0.02)


def _is_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_failing_liveness_probe_kills_the_container(make_runner):
    runner = make_runner("Never", livenessProbe={
        "exec": {"command": [sys.executable, "-c", "raise SystemExit(1)"]},
        "periodSeconds": 1, "failureThreshold": 1, "terminationGracePeriodSeconds": 1})
    start(runner, [sys.executable, "-c", "import time; time.sleep(60)"])
    run_until(runner, lambda: runner.done, timeout=20)
    assert "failed liveness probe" in runner.state["terminated"]["message"]


def test_kill_registered_kills_leftover_groups(tmp_path):
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    registry = ProcessRegistry(tmp_path / "run")
    registry.add(process.pid, "ns/p/c")
    assert kill_registered(tmp_path / "run") == [process.pid]
    assert process.wait(5) == -signal.SIGKILL
    assert not list((tmp_path / "run").iterdir())
