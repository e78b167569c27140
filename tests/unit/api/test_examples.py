"""Every manifest in examples/ is a valid AgentCluster (an e2e test also applies them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent_api import models

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert [p.name for p in EXAMPLES][:2] == ["01-minimal.yaml", "02-scheduled.yaml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_valid_agent_cluster(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents
    for document in documents:
        cluster = models.AgentCluster.model_validate(document)
        assert cluster.spec.ai is not None and cluster.spec.ai.provider == "echo"
        assert any(
            f.python is not None and f.python.entrypoint == "agent_runtime.builtins:echo"
            for f in cluster.spec.functions
        )
