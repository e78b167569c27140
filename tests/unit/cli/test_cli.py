"""`agentclusters --version`: the installed package's version, as `pip show` reports it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from agentclusters import cli


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_packages_version(flag: str, capsys: pytest.CaptureFixture[str]):
    assert cli.main([flag]) == 0
    assert capsys.readouterr().out == f"agentclusters {importlib.metadata.version('agent-clusters')}\n"


def test_version_from_the_command_line():
    result = subprocess.run([sys.executable, "-m", "agentclusters", "--version"], capture_output=True, text=True,
                            timeout=60, check=False)
    expected = f"agentclusters {importlib.metadata.version('agent-clusters')}\n"
    assert (result.returncode, result.stdout) == (0, expected), result.stderr


def test_usage_names_the_version_flag(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--help"]) == 0
    assert "--version" in capsys.readouterr().out
