"""agent_api.crd: the generated CRD is structural, deterministic, and checked in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent_api import constants, crd, models

CHECKED_IN = Path(__file__).parents[3] / "crds" / crd.FILENAME
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "additionalProperties", "const"}


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _walk(value, f"{path}.{key}")
        if "items" in node:
            found += _walk(node["items"], f"{path}[]")
    return found


def _schema() -> dict[str, Any]:
    return crd.definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_checked_in_crd_matches_the_models() -> None:
    """Drift: run `make crds` (python -m agent_api.crd --output crds) and commit the file."""
    assert CHECKED_IN.read_text("utf-8") == crd.render()


def test_render_is_deterministic() -> None:
    assert crd.render() == crd.render()
    assert yaml.safe_load(crd.render()) == crd.definition()


def test_schema_is_structural() -> None:
    for path, node in _walk(_schema()):
        assert not FORBIDDEN & node.keys(), (path, FORBIDDEN & node.keys())
        if node.get("x-kubernetes-int-or-string"):  # the one untyped node allowed
            assert "type" not in node and "properties" not in node, path
            continue
        assert "type" in node, path
        if node["type"] == "object" and path not in (".metadata",):
            assert "properties" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert node.get("default", "") is not None, path
        assert "nullable" not in node, path


def test_only_the_payload_keeps_unknown_fields() -> None:
    free = [p for p, n in _walk(_schema()) if n.get("x-kubernetes-preserve-unknown-fields")]
    assert free == [".spec.schedules[].payload"]


def test_every_list_carrying_cel_rules_is_bounded() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    for name in ("functions", "schedules", "webhooks", "channels", "mcpServers", "imagePullSecrets"):
        assert spec[name]["maxItems"] > 0
        assert spec[name]["x-kubernetes-list-type"] == "map"
        assert spec[name]["x-kubernetes-list-map-keys"] == ["name"]
    for path, node in _walk(_schema()):
        if node.get("type") == "string" and node.get("x-kubernetes-validations"):
            assert node.get("maxLength"), path


def test_defaults_and_enums_come_from_the_models() -> None:
    spec = _schema()["properties"]["spec"]
    props = spec["properties"]
    assert props["replicas"] == {
        "description": "Number of named replicas.", "type": "integer", "default": 1,
        "minimum": 0, "maximum": constants.MAX_REPLICAS,
    }
    schedule = props["schedules"]["items"]["properties"]
    assert schedule["timezone"]["default"] == "UTC"
    assert schedule["mode"]["enum"] == ["single", "cluster"]
    assert schedule["missedFirePolicy"]["default"] == "skip"
    assert props["statePolicy"]["default"] == {}
    assert props["statePolicy"]["properties"]["whenDeleted"]["default"] == "Retain"
    assert props["ai"]["properties"]["provider"]["enum"] == ["openai", "anthropic", "echo"]
    assert "baseURL" in props["ai"]["properties"]


def test_cel_rules_are_present() -> None:
    schema = _schema()
    spec_rules = [r["rule"] for r in schema["properties"]["spec"]["x-kubernetes-validations"]]
    assert any("self.schedules.all" in r for r in spec_rules)
    assert any("self.webhooks.all" in r for r in spec_rules)
    root_rule = schema["x-kubernetes-validations"][0]
    assert root_rule["rule"].startswith(
        f"self.metadata.name.size() <= {constants.MAX_CLUSTER_NAME_LENGTH}"
    )
    function = schema["properties"]["spec"]["properties"]["functions"]["items"]
    assert "has(self.http)" in function["x-kubernetes-validations"][0]["rule"]


def test_subresources_names_and_columns() -> None:
    spec = crd.definition()["spec"]
    assert spec["group"] == constants.GROUP
    assert spec["names"]["shortNames"] == ["agc"]
    version = spec["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in version["subresources"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Replicas"] == ".spec.replicas"
    assert columns["Ready-Replicas"] == ".status.readyReplicas"
    assert columns["First-Member"] == ".status.members[*].name"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_no_category_that_could_shadow_another_projects_resource() -> None:
    """kubectl expands categories before resource names: the old category `agents` made
    `kubectl get agents` list AgentClusters where kagent is installed."""
    assert "categories" not in crd.definition()["spec"]["names"]


def test_ready_columns_come_from_the_ready_condition() -> None:
    columns = {c["name"]: c for c in crd.definition()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert "priority" not in columns["Ready"] and "priority" not in columns["Reason"]


def test_wide_columns_have_priority_one() -> None:
    columns = {c["name"]: c for c in crd.definition()["spec"]["versions"][0]["additionalPrinterColumns"]}
    wide = {name for name, c in columns.items() if c.get("priority") == 1}
    assert wide == {"Message", "Model", "Archived", "Generation", "Observed", "First-Member"}


def test_status_archived_is_bounded_in_the_schema() -> None:
    status = _schema()["properties"]["status"]["properties"]
    assert status["archived"]["maxItems"] == models.ARCHIVED_IN_STATUS
    assert status["archivedCount"]["type"] == "integer"


def test_main_writes_and_checks(tmp_path: Path) -> None:
    assert crd.main(["--output", str(tmp_path), "--check"]) == 1
    assert crd.main(["--output", str(tmp_path)]) == 0
    assert (tmp_path / crd.FILENAME).read_text() == crd.render()
    assert crd.main(["--output", str(tmp_path), "--check"]) == 0
