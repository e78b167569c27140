"""Every manifest in examples/ applies with kubectl and becomes Ready, so the docs never lie."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent_api import constants
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_applies_and_becomes_ready(agc, devcluster, namespace: str, path: Path):
    example = yaml.safe_load(path.read_text())
    name, replicas = example["metadata"]["name"], example["spec"]["replicas"]

    applied = devcluster.kubectl("-n", namespace, "apply", "-f", str(path))

    assert applied.returncode == 0, applied.stderr
    obj = eventually(lambda: (o := ac.get(agc, namespace, name))
                     and (ac.condition(o, constants.CONDITION_READY) or {}).get("status") == "True" and o,
                     timeout=120, what=f"{name} to be Ready")
    assert obj["status"]["readyReplicas"] == replicas
    assert ac.condition(obj, constants.CONDITION_DEGRADED)["status"] == "False"
