"""Where container output goes: one append-only file per container, across restarts."""

from __future__ import annotations

from pathlib import Path


def pod_dir(state_dir: Path, namespace: str, pod: str) -> Path:
    return Path(state_dir) / "pods" / f"{namespace}_{pod}"


def container_log_path(state_dir: Path, namespace: str, pod: str, container: str) -> Path:
    """`state_dir/pods/<namespace>_<pod>/<container>.log` (stdout and stderr, interleaved)."""
    return pod_dir(state_dir, namespace, pod) / f"{container}.log"
