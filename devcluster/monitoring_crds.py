"""prometheus-operator's PodMonitor and ServiceMonitor CRDs, for testing the chart's monitors
against the real schemas with a server-side dry run.

Fetched once through the Go module proxy (the module zip of a pinned release, its SHA-256
checked) and cached outside the repository, keyed by version, like the control-plane binaries
(`build-binaries.sh`). prometheus-operator is Apache-2.0; nothing of it is vendored here.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
import zipfile
from pathlib import Path

VERSION = "v0.85.0"
MODULE = "github.com/prometheus-operator/prometheus-operator"
ZIP_SHA256 = "0bdb88ed823d0f2e86cf909638439b6ad1da744a228172c7411d9987527dc5d1"
FILES = ("monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_servicemonitors.yaml")


def cache_dir() -> Path:
    base = os.environ.get("AGENT_CLUSTERS_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agent-clusters"
    return Path(base) / "prometheus-operator-crds" / VERSION


def ensure() -> list[Path]:
    """The two CRD files of prometheus-operator VERSION, downloading them the first time."""
    target = cache_dir()
    paths = [target / name for name in FILES]
    if all(path.is_file() for path in paths):
        return paths
    url = f"https://proxy.golang.org/{MODULE}/@v/{VERSION}.zip"
    try:
        with urllib.request.urlopen(url, timeout=120) as answer:
            data = answer.read()
    except OSError as error:
        raise RuntimeError(f"fetching prometheus-operator {VERSION} from {url} failed ({error}); the chart's "
                           f"monitor tests need its CRDs once (cached in {target})") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != ZIP_SHA256:
        raise RuntimeError(f"{url} has SHA-256 {digest}, not the pinned {ZIP_SHA256}: refusing it")
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for path in paths:
            member = f"{MODULE}@{VERSION}/example/prometheus-operator-crd/{path.name}"
            partial = path.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
            partial.replace(path)  # complete files only, should two test sessions race
    return paths
