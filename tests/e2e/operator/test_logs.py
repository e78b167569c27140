"""The operator's log is kopf's own JSON format: one object per line with `timestamp`,
`severity` and `message`, and `object` (the AgentCluster's kind, namespace, name and uid) on
the lines about one AgentCluster, so a log pipeline can filter an agent's history."""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import RunningOperator, eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest

pytestmark = pytest.mark.e2e


def _lines(operator: RunningOperator) -> list[str]:
    return [line for line in operator.log().splitlines() if line.strip()]


def test_every_operator_log_line_is_a_json_object(agc, operator, namespace):
    ac.create(agc, namespace, manifest("logged", 1))
    ac.ready_members(agc, namespace, "logged", 1)
    for line in _lines(operator):
        parsed = json.loads(line)
        assert {"timestamp", "severity", "message"} <= parsed.keys(), line


def test_lines_about_an_agentcluster_name_it(agc, operator, namespace):
    created = ac.create(agc, namespace, manifest("named", 1))

    def about_it() -> list[dict]:
        parsed = [json.loads(line) for line in _lines(operator) if line.startswith("{")]
        return [p for p in parsed if (p.get("object") or {}).get("namespace") == namespace
                and p["object"].get("name") == "named"]

    lines = eventually(about_it, what="a log line about the AgentCluster")
    assert lines[0]["object"]["kind"] == "AgentCluster"
    assert lines[0]["object"]["uid"] == created["metadata"]["uid"]
