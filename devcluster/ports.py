"""Free-port and readiness helpers shared by every devcluster component."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it, so parallel runs don't collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it is true; raise a TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except RuntimeError:
            raise  # a supervised process died (Process.check_alive): waiting cannot help
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not become ready within {timeout:.0f}s")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
