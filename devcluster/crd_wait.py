"""Waiting for a CustomResourceDefinition to be Established, without kubectl's race.

Right after a CRD is created its `.status.conditions` is still null, and `kubectl wait
--for=condition=Established` then fails at once ("status.conditions accessor error: <nil>")
instead of waiting. Retried until the deadline, it waits as intended.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

NOT_YET = "accessor error"


def wait_established(kubectl: Sequence[str], *targets: str,
                     timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `kubectl wait --for=condition=Established <targets>`; `kubectl` is the command
    with its connection flags. Returns the last attempt (returncode 0 when established)."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(int(deadline - time.monotonic()), 1)
        result = subprocess.run([*kubectl, "wait", "--for=condition=Established",
                                 f"--timeout={left}s", *targets],
                                capture_output=True, text=True, timeout=left + 30, check=False)
        if result.returncode == 0 or NOT_YET not in result.stderr \
                or time.monotonic() >= deadline:
            return result
        time.sleep(0.2)
