"""The chart's `helm test` hook, run here as processes: the hook Pod's own command and arguments
(rendered by helm) against the real gateway and operator of this session, with the Service
addresses swapped for their loopback ones. The devcluster's kubelet cannot run the hook Pod
itself (it ignores images and volumes, and the script reaches it through a ConfigMap volume)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from devcluster import gateway_process, ports
from tests.e2e.helpers import RunningOperator
from tests.unit import chart

SCRIPT = chart.CHART / "files" / "smoke_check.py"


def _hook_command(namespace: str, gateway_url: str, webhook_url: str) -> list[str]:
    """The rendered hook Pod's command line, pointed at this session's processes."""
    pod = chart.one(chart.render(namespace="agent-clusters"), "Pod", "ac-agent-clusters-smoke-check")
    (container,) = pod["spec"]["containers"]
    (mount,) = container["volumeMounts"]
    command = [sys.executable if part == "python" else part for part in container["command"]]
    command = [str(SCRIPT) if part == f"{mount['mountPath']}/smoke_check.py" else part for part in command]
    swapped = {
        "--gateway-url": gateway_url,
        "--webhook-url": webhook_url,
        "--namespace": namespace,
    }
    args = []
    for arg in container["args"]:
        flag, _, _ = arg.partition("=")
        args.append(f"{flag}={swapped[flag]}")
    return [*command, *args]


def _webhook_url(operator: RunningOperator) -> str:
    settings = yaml.safe_load((operator.state_dir / "operator.yaml").read_text())
    return f"https://{settings['webhook']['listen']}:{settings['webhook']['port']}"


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=Path("/"))


def test_helm_test_hook_passes_against_a_running_gateway_and_operator(
        gateway: gateway_process.RunningGateway, operator: RunningOperator, namespace: str) -> None:
    result = _run(_hook_command(namespace, gateway.url, _webhook_url(operator)))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ok ") for line in lines), result.stdout


def test_helm_test_hook_fails_when_the_gateway_is_not_serving(
        gateway: gateway_process.RunningGateway, operator: RunningOperator, namespace: str) -> None:
    closed = f"http://127.0.0.1:{ports.free_port()}"
    result = _run(_hook_command(namespace, closed, _webhook_url(operator)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL gateway {closed}" in result.stdout
    assert "ok   operator webhook" in result.stdout  # one failure does not hide the other check
