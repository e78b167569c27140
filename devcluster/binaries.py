"""Finds the control-plane binaries, building them from their Go modules when missing.

The build itself lives in `build-binaries.sh` (Go toolchain work reads best as shell); this
module runs it, lets its progress through, and returns the cached binary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.19.5"

_SCRIPT = Path(__file__).with_name("build-binaries.sh")


def ensure() -> Path:
    """The directory holding kube-apiserver, kube-controller-manager, kube-scheduler,
    kubectl, etcd and helm; builds them first if the cache lacks any (minutes, once)."""
    result = subprocess.run(
        ["bash", str(_SCRIPT)],
        env={
            **os.environ,
            "K8S_VERSION": K8S_VERSION,
            "ETCD_VERSION": ETCD_VERSION,
            "HELM_VERSION": HELM_VERSION,
        },
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"building the control-plane binaries failed (exit {result.returncode}); "
            "the lines above say why. Re-run `bash devcluster/build-binaries.sh` to retry."
        )
    return Path(result.stdout.strip().splitlines()[-1])

