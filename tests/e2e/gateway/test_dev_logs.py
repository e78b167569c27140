"""`agentclusters dev logs -f`: one stream of the operator's, the gateway's and every replica's
log lines, each prefixed with its source, following new lines and new replicas until Ctrl-C.
Run as the real command against a stack-shaped state directory over this session's devcluster,
operator and gateway."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gateway import mcpclient
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack_dir(tmp_path: Path, devcluster, operator, gateway) -> Path:
    """`.dev` as `make dev-up` lays it out: the operator's and gateway's logs, the kubelet's."""
    cluster = tmp_path / ".dev" / "cluster"
    cluster.mkdir(parents=True)
    (cluster / "logs").symlink_to(gateway.process.log.parent)
    (cluster / "kubelet").symlink_to(devcluster.kubelet_dir)
    return tmp_path / ".dev"


class Output:
    """The lines a child process prints, collected as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self._reader.start()


@pytest.fixture
def following(stack_dir: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    process = subprocess.Popen([sys.executable, "-m", "agentclusters", "dev", "--dir", str(stack_dir),
                                "logs", "-f", "--tail", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        yield process, Output(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_follows_the_operator_the_gateway_and_a_new_replica_until_ctrl_c(following, gateway, namespace,
                                                                              token_for):
    process, output = following
    await asyncio.sleep(1)
    assert process.poll() is None, process.communicate()
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await mcp.call("make_agent", name="followed", namespace=namespace, ai_provider="echo")

    def seen(prefix: str, text: str) -> list[str]:
        return [line for line in output.lines if line.startswith(prefix) and text in line]

    eventually(lambda: seen("[gateway] ", '"tool": "make_agent"'), timeout=30, what="the gateway's audit line")
    eventually(lambda: seen("[operator] ", f'"namespace": "{namespace}"'), timeout=30,
               what="an operator line about the new agent")
    eventually(lambda: seen(f"[{namespace}/followed-", "runtime started"), timeout=60,
               what="the new replica's start")

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert "Traceback" not in process.stderr.read()
