"""The AgentCluster CustomResourceDefinition, generated from `agent_api.models`.

The models are the one definition of the API; this module turns their JSON schema into
the structural OpenAPI v3 schema the API server wants:

* `$ref`s are inlined (structural schemas have no references);
* `X | None` (`anyOf: [X, {type: null}]`) becomes plain `X`, *not* `nullable: true`: for
  a non-nullable field the API server prunes an explicit `null` before defaulting and
  validation, so `image: null` means "absent" and CEL's `has()` stays truthful (with
  `nullable: true` the null would be stored and `has(self.ai)` would be true for `ai: null`);
* `default: null`, `title` and `additionalProperties: false` are dropped (the API server
  prunes unknown fields instead of refusing them);
* an IntOrString (`models.MaxUnavailable`) is `x-kubernetes-int-or-string: true` with no
  type, the one untyped node a structural schema allows;
* a free-form object (`dict[str, Any]`, the schedule payload) gets
  `x-kubernetes-preserve-unknown-fields: true`, and nothing else does;
* CEL rules (`x-kubernetes-validations`) and list-map markers come from the models.

`render()` is deterministic; `crds/agentclusters.agentclusters.io.yaml` is its output,
checked in, and a unit test fails when the two drift apart. `main()` writes it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from agent_api import constants, models

FILENAME = f"{constants.CRD_NAME}.yaml"

_DROPPED_KEYS = {"title", "additionalProperties", "$defs"}
_RULE_KEYS = ("rule", "message", "messageExpression", "fieldPath", "reason", "optionalOldSelf")


def openapi_schema(model: type[models.ApiModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {branches}")
        inner = _convert(branches[0], defs)
        # Outer keys (description, default, field-level rules) win over the branch's.
        node = {**inner, **{k: v for k, v in node.items() if k != "x-kubernetes-validations"}}
        rules = list(inner.get("x-kubernetes-validations", []))
        rules += [r for r in node.get("x-kubernetes-validations", []) if r not in rules]
        if rules:
            node["x-kubernetes-validations"] = rules
    for key in ("allOf", "oneOf", "not", "exclusiveMinimum", "exclusiveMaximum", "const"):
        if key in node:
            raise ValueError(f"{key!r} has no place in this CRD's schema: {node}")
    if "default" in node and node["default"] is None:
        del node["default"]

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _convert(prop, defs) for name, prop in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "x-kubernetes-validations":
            out[key] = [{k: rule[k] for k in _RULE_KEYS if k in rule} for rule in value]
        elif key == "description":
            out[key] = " ".join(value.split())
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out:
        # A free-form JSON object: the only place unknown fields are kept.
        out.pop("additionalProperties", None)
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out and not (out.get("x-kubernetes-preserve-unknown-fields")
                                  or out.get("x-kubernetes-int-or-string")):
        raise ValueError(f"every node of a structural schema needs a type: {node}")
    return _ordered(out)


_ORDER = (
    "description", "type", "format", "enum", "default", "minimum", "maximum", "minLength",
    "maxLength", "pattern", "minItems", "maxItems", "required", "properties", "items",
)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Keys in a fixed, readable order, so the generated YAML is stable and reviewable."""
    ordered = {k: node[k] for k in _ORDER if k in node}
    ordered.update({k: node[k] for k in sorted(node) if k not in ordered})
    return ordered


def root_schema() -> dict[str, Any]:
    return {
        "description": models.AgentCluster.__doc__,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 253},
                    "generateName": {"type": "string", "maxLength": 253},
                },
            },
            "spec": {**openapi_schema(models.AgentClusterSpec), "default": {}},
            "status": openapi_schema(models.AgentClusterStatus),
        },
        "x-kubernetes-validations": [models.CLUSTER_NAME_RULE],
    }


def definition() -> dict[str, Any]:
    """The CustomResourceDefinition as a plain dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": constants.CRD_NAME},
        "spec": {
            "group": constants.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": constants.KIND,
                "listKind": constants.LIST_KIND,
                "plural": constants.PLURAL,
                "singular": constants.SINGULAR,
                "shortNames": list(constants.SHORT_NAMES),
                # No categories: kubectl expands a category before it looks for a resource of
                # that name, so a category shared with another project hijacks its `kubectl get`
                # (`agents` would have listed AgentClusters in place of kagent's Agents). With
                # one kind there is nothing to group; `kubectl get agc` is the short form.
            },
            "versions": [
                {
                    "name": constants.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": _printer_columns(),
                }
            ],
        },
    }


def _printer_columns() -> list[dict[str, Any]]:
    # The API server's table printer shows only the *first* match of a column's JSONPath
    # (tableconvertor.go takes results[0][0]), so `.status.members[*].name` prints one name:
    # the oldest member, as the operator keeps members ordered by ordinal. For the same reason
    # a list's length (e.g. how many schedules) cannot be a column: JSONPath has no count.
    ready = '.status.conditions[?(@.type=="Ready")]'
    return [
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas",
         "description": "Desired number of replicas."},
        {"name": "Ready-Replicas", "type": "integer", "jsonPath": ".status.readyReplicas",
         "description": "Replicas whose pod is ready."},
        # The Ready condition, not the count: a Degraded or QuotaExceeded cluster is not Ready
        # even when every pod it has is (agent_operator/status.py), and the reason says why.
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status",
         "description": "The Ready condition: True only when every desired replica is ready and "
                        "nothing is degraded or over quota."},
        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason",
         "description": "Why the cluster is (not) Ready, e.g. ReplicaFailing, QuotaExceeded."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        # -o wide (priority 1): what an operator looks at next.
        {"name": "Message", "type": "string", "jsonPath": f"{ready}.message", "priority": 1,
         "description": "The Ready condition's message: which replica fails and why, or the quota."},
        {"name": "Model", "type": "string", "jsonPath": ".spec.ai.model", "priority": 1,
         "description": "The AI model (spec.ai.model)."},
        {"name": "Archived", "type": "integer", "jsonPath": ".status.archivedCount", "priority": 1,
         "description": "Replicas archived in all (status lists the newest only)."},
        {"name": "Generation", "type": "integer", "jsonPath": ".metadata.generation", "priority": 1,
         "description": "The spec's generation."},
        {"name": "Observed", "type": "integer", "jsonPath": ".status.observedGeneration", "priority": 1,
         "description": "The generation the operator last acted on; behind Generation: not caught up."},
        {"name": "First-Member", "type": "string", "jsonPath": ".status.members[*].name", "priority": 1,
         "description": "Oldest live replica (the server prints the first match only)."},
    ]


def render() -> str:
    """The CRD as YAML, byte-for-byte what `crds/` holds."""
    header = (
        "# Generated from agent_api/models.py by `make crds` (agent_api.crd). Do not edit;\n"
        "# tests/unit/api/test_crd.py fails when this file and the models drift apart.\n"
    )
    body = yaml.safe_dump(definition(), sort_keys=False, width=100, allow_unicode=True)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentclusters crds", description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="crds", help="directory to write the CRD into")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs instead of writing it"
    )
    args = parser.parse_args(argv)
    path = Path(args.output) / FILENAME
    text = render()
    if args.check:
        current = path.read_text("utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date; run `make crds`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
