"""Helpers for e2e tests: polling with a deadline (never timings), process checks, and the
handle on the session's operator process."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from devcluster.processes import Process

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 60, interval: float = 0.25,
               what: str = "the condition") -> T:
    """Call `check` until it returns something truthy (returned) without raising; on timeout
    fail with the last value or exception."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s; last: {last!r}")
        time.sleep(interval)


async def eventually_async(check: Callable[[], Awaitable[T]], *, within: float = 90, interval: float = 1,
                           what: str = "the condition") -> T:
    """`eventually` for a coroutine check, waiting without blocking the event loop (an MCP
    session lives on it)."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last  # type: ignore[return-value]
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} did not happen within {within:.0f}s; last: {last!r}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still "exists" until reaped; treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def container_pid(pod, container: str | None = None) -> int | None:
    """The pid behind a running container (`containerID: process://<pid>`)."""
    for status in (pod.status.container_statuses or []) if pod.status else []:
        if container in (None, status.name) and status.state and status.state.running \
                and status.container_id:
            return int(status.container_id.removeprefix("process://"))
    return None


@dataclass
class RunningOperator:
    process: Process
    database_url: str
    state_dir: Path
    start: Callable[[], Process]
    replica_auth_key: str
    """The master key of the replicas' tokens; a gateway of this session needs the same."""

    def log(self) -> str:
        return self.process.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the operator: no cleanup handlers run, whatever it was doing stops there."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(timeout=10)
        eventually(lambda: not pid_alive(self.process.pid), timeout=10, what="the operator to die")

    def restart(self) -> None:
        """Start a new operator process (same settings and database) after `kill()`."""
        self.process = self.start()

