"""The README's first commands work as written. Each shell block the README marks with
`<!-- docs-test: after-dev-up ... -->` runs, line by line under `bash -euo pipefail`, in a
directory shaped like a fresh checkout (the repository's files linked in, no `.dev/` of its
own, so a developer's running stack is never touched), with a bare PATH (no virtualenv, maybe a
system kubectl of another version): `make dev-up` really runs, and `source .dev/env` must put the
devcluster's kubectl and `.venv/bin` first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.stack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = "after-dev-up"
BLOCK = re.compile(r"<!-- docs-test: (?P<name>[a-z-]+)[^>]*-->\n```sh\n(?P<body>.*?)\n```", re.DOTALL)
# A login shell's default PATH on Debian: nothing of the project on it.
BARE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def readme_blocks(name: str) -> list[str]:
    return [m["body"] for m in BLOCK.finditer(README.read_text("utf-8")) if m["name"] == name]


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A checkout-shaped directory: every top-level entry of the repository linked, but `.dev`.
    Not under pytest's tmp_path: a later pytest session on the machine makes pytest's base
    directory private again, and `postgres` could then no longer reach its data to stop."""
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.fail(f"{ROOT}/.venv is missing: the README's `make dev-up` uses the checkout's virtualenv "
                    "(`make test` or `make bootstrap` creates it)")
    work = Path(tempfile.mkdtemp(prefix="agentclusters-readme-"))
    for entry in ROOT.iterdir():
        if entry.name not in (".dev", ".git"):
            (work / entry.name).symlink_to(entry)
    try:
        yield work
    finally:
        Stack(work / ".dev").down()
        shutil.rmtree(work, ignore_errors=True)


def test_readme_marks_the_commands_after_dev_up() -> None:
    (block,) = readme_blocks(MARKER)
    lines = block.splitlines()
    assert lines[:2] == ["make dev-up", "source .dev/env"]
    assert any(line.startswith("kubectl ") for line in lines)
    assert any(line.startswith("agentclusters dev ") for line in lines)


def test_readme_commands_after_dev_up_work_as_written(checkout: Path) -> None:
    (block,) = readme_blocks(MARKER)
    env = {"HOME": os.environ["HOME"], "PATH": BARE_PATH, "LANG": "C.UTF-8"}
    # Which kubectl and agentclusters the block's commands ran (a machine may have another kubectl).
    trailer = 'echo "kubectl=$(command -v kubectl)"; echo "agentclusters=$(command -v agentclusters)"'
    result = subprocess.run(["bash", "-euo", "pipefail", "-xc", f"{block}\n{trailer}"], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert "agentcluster.agentclusters.io/hello created" in result.stdout
    assert "agentcluster.agentclusters.io/hello scaled" in result.stdout
    assert re.search(r"^kube-apiserver\s+running$", result.stdout, re.MULTILINE), result.stdout
    env_file = (checkout / ".dev" / "env").read_text()
    devcluster_bin = re.search(r"^export DEVCLUSTER_BIN=(\S+)$", env_file, re.MULTILINE)[1]
    assert f"kubectl={devcluster_bin}/kubectl" in result.stdout.splitlines()
    assert f"agentclusters={checkout}/.venv/bin/agentclusters" in result.stdout.splitlines()
