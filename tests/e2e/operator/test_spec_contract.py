"""The spec contract: every field of the AgentCluster CRD does what it says.

A kitchen-sink AgentCluster sets every leaf field of the CRD's spec schema (as the API server
serves it). `HONOURED` names, for each leaf, the component that acts on it and the attribute
it reads it by; the schema, the kitchen sink and `HONOURED` must list the same fields, so a
field added to the API without a consumer, without a place in the kitchen sink or without an
entry here fails this module (add it to all three, and to a behaviour test).

The kitchen sink then runs on the devcluster with the real operator, and each field is
observed where it acts:
- the operator: replicas (members), image and imagePullSecrets (the pods'), every Secret
  reference (the pods' env and the runtime process's environment), disruption.maxUnavailable
  (the cluster's PodDisruptionBudget), statePolicy.whenDeleted (state gone on delete);
- the runtime: the stored spec is what was applied, the runtime's parser keeps every value,
  and the http function, fired every second in cluster mode, reaches an outside recorder
  with its method, its header from a Secret, the schedule's payload and each replica's own
  state (only the listed stateKeys).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants, secret_env
from agent_runtime import spec as runtime_spec
from tests.e2e.helpers import container_pid, eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest
from tests.support.recorder import Recorder

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
NAME = "sink"
HTTP_FUNCTION = "sources.watch"
HEADER = "X-Api-Token"
IMAGE = "agent-clusters:dev"  # the devcluster operator's own image, allowed in every tier
PULL_SECRET = "registry-credentials"  # the process kubelet pulls nothing: only the pod carries it
SECRETS = {
    "llm": {"api-key": "sk-kitchen-sink"},
    "source-api": {"token": "tok-kitchen-sink"},
    "hooks": {"github": "hook-signing-secret"},
    "slack": {"webhook": "https://hooks.slack.example/T000/B000/XXX"},
    "docs-mcp": {"Authorization": "Bearer mcp-kitchen-sink"},
}


def kitchen_sink(recorder_url: str) -> dict[str, Any]:
    """A spec that sets every field of the CRD (checked against the served schema below)."""
    return {
        "replicas": 2,
        "image": IMAGE,
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "disruption": {"maxUnavailable": "50%"},
        "statePolicy": {"whenDeleted": "Delete"},
        "ai": {"provider": "echo", "model": "echo-1", "baseURL": "http://127.0.0.1:9/v1",
               "apiKeySecretRef": {"name": "llm", "key": "api-key"},
               "systemPrompt": "You watch sources.", "allowModelToSetSystemPrompt": True},
        "functions": [
            {"name": HTTP_FUNCTION, "http": {
                "url": recorder_url, "method": "PATCH", "timeoutSeconds": 10, "retries": 1,
                "headers": [{"name": HEADER, "secretKeyRef": {"name": "source-api", "key": "token"}}],
                "stateKeys": ["cursor"]}},
            {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}},
            {"name": "summarize", "prompt": {"template": "Summarize the sources.",
                                             "tools": [HTTP_FUNCTION, "echo"]}},
        ],
        "schedules": [{
            "name": "watch", "function": HTTP_FUNCTION, "cron": "* * * * * *",
            "timezone": "Europe/Paris", "mode": "cluster", "enabled": True,
            "missedFirePolicy": "backfill", "backfillLimit": 5, "missedFireGraceSeconds": 30,
            "failurePolicy": {"action": "backoff", "maxConsecutiveFailures": 5, "backoffSeconds": 10},
            "allowOverlap": True, "payload": {"source": "kitchen"}}],
        "webhooks": [{"name": "gh-push", "path": "/github", "function": "echo",
                      "secretRef": {"name": "hooks", "key": "github"}, "synchronous": True}],
        "channels": [{"name": "alerts", "type": "slack",
                      "urlSecretRef": {"name": "slack", "key": "webhook"}}],
        "mcpServers": [{"name": "docs", "url": "http://127.0.0.1:9/mcp",
                        "headersSecretRef": {"name": "docs-mcp"}}],
        "limits": {"maxConcurrentRuns": 8, "runTimeoutSeconds": 60, "maxIterations": 5,
                   "maxTokens": 50_000, "maxWallClockSeconds": 120, "maxFunctionCalls": 10,
                   "memoryMaxTokens": 4000, "leaseSeconds": 20, "maxAttempts": 2,
                   "stateMaxValueBytes": 32_768, "stateMaxTotalBytes": 524_288,
                   "historyRetentionHours": 48},
    }


@dataclass(frozen=True)
class Honour:
    """Who acts on a field (operator, runtime or gateway) and the attribute it reads."""

    by: str
    reads: str


def _all(by: str, **paths: str) -> dict[str, Honour]:
    return {path: Honour(by, reads) for path, reads in paths.items()}


def _secret_key_ref(path: str, reads: str) -> dict[str, Honour]:
    """A SecretKeyRef: the operator turns it into a pod env reference."""
    return {f"{path}.name": Honour("operator", reads), f"{path}.key": Honour("operator", reads)}


HONOURED: dict[str, Honour] = {
    "replicas": Honour("operator", "replicas"),
    "image": Honour("operator", "image"),
    "imagePullSecrets[].name": Honour("operator", "image_pull_secrets"),
    "disruption.maxUnavailable": Honour("operator", "max_unavailable"),
    "statePolicy.whenDeleted": Honour("operator", "when_deleted"),
    **_all("runtime", **{"ai.provider": "provider", "ai.model": "model", "ai.baseURL": "base_url",
                         "ai.systemPrompt": "system_prompt",
                         "ai.allowModelToSetSystemPrompt": "allow_model_to_set_system_prompt"}),
    **_secret_key_ref("ai.apiKeySecretRef", "api_key_secret_ref"),
    **_all("runtime", **{"functions[].name": "name", "functions[].http.url": "url",
                         "functions[].http.method": "method",
                         "functions[].http.headers[].name": "headers",
                         "functions[].http.timeoutSeconds": "timeout_seconds",
                         "functions[].http.retries": "retries",
                         "functions[].http.stateKeys": "state_keys",
                         "functions[].python.entrypoint": "entrypoint",
                         "functions[].prompt.template": "template",
                         "functions[].prompt.tools": "tools"}),
    **_secret_key_ref("functions[].http.headers[].secretKeyRef", "secret_key_ref"),
    **_all("runtime", **{f"schedules[].{wire}": attribute for wire, attribute in {
        "name": "name", "function": "function", "cron": "cron", "timezone": "timezone",
        "mode": "mode", "enabled": "enabled", "missedFirePolicy": "missed_fire_policy",
        "backfillLimit": "backfill_limit", "missedFireGraceSeconds": "missed_fire_grace_seconds",
        "failurePolicy.action": "action",
        "failurePolicy.maxConsecutiveFailures": "max_consecutive_failures",
        "failurePolicy.backoffSeconds": "backoff_seconds", "allowOverlap": "allow_overlap",
        "payload": "payload"}.items()}),
    "webhooks[].name": Honour("runtime", "name"),
    "webhooks[].path": Honour("gateway", "path"),
    "webhooks[].function": Honour("runtime", "function"),
    "webhooks[].synchronous": Honour("runtime", "synchronous"),
    **_secret_key_ref("webhooks[].secretRef", "secret_ref"),
    "channels[].name": Honour("runtime", "name"),
    "channels[].type": Honour("runtime", "type"),
    **_secret_key_ref("channels[].urlSecretRef", "url_secret_ref"),
    "mcpServers[].name": Honour("runtime", "name"),
    "mcpServers[].url": Honour("runtime", "url"),
    "mcpServers[].headersSecretRef.name": Honour("operator", "headers_secret_ref"),
    **_all("runtime", **{f"limits.{wire}": attribute for wire, attribute in {
        "maxConcurrentRuns": "max_concurrent_runs", "runTimeoutSeconds": "run_timeout_seconds",
        "maxIterations": "max_iterations", "maxTokens": "max_tokens",
        "maxWallClockSeconds": "max_wall_clock_seconds", "maxFunctionCalls": "max_function_calls",
        "memoryMaxTokens": "memory_max_tokens", "leaseSeconds": "lease_seconds",
        "maxAttempts": "max_attempts", "stateMaxValueBytes": "state_max_value_bytes",
        "stateMaxTotalBytes": "state_max_total_bytes",
        "historyRetentionHours": "history_retention_hours"}.items()}),
}
PACKAGES = {"operator": "agent_operator", "runtime": "agent_runtime", "gateway": "agent_gateway"}
OPERATOR_ONLY = {"replicas", "image", "imagePullSecrets[].name", "disruption.maxUnavailable",
                 "statePolicy.whenDeleted"}


# -- the schema and the kitchen sink, as leaf paths ----------------------------------------------


def schema_leaves(node: dict[str, Any], path: str = "") -> set[str]:
    """Leaf fields of an OpenAPI schema: `a.b`, `list[].c`; a list of scalars and a free-form
    object (payload) are leaves themselves."""
    if node.get("type") == "object" and "properties" in node:
        leaves: set[str] = set()
        for name, child in node["properties"].items():
            leaves |= schema_leaves(child, f"{path}.{name}" if path else name)
        return leaves
    if node.get("type") == "array" and node["items"].get("type") in ("object", "array"):
        return schema_leaves(node["items"], f"{path}[]")
    return {path}


def value_leaves(value: Any, path: str = "", indexed: bool = False) -> dict[str, Any]:
    """The leaf values of a spec by path (`[]` for list items, or `[i]` when `indexed`)."""
    if isinstance(value, dict) and not path.endswith("payload"):
        found: dict[str, Any] = {}
        for name, child in value.items():
            found |= value_leaves(child, f"{path}.{name}" if path else name, indexed)
        return found
    if isinstance(value, list) and value and isinstance(value[0], dict):
        found = {}
        for i, item in enumerate(value):
            found |= value_leaves(item, f"{path}[{i if indexed else ''}]", indexed)
        return found
    return {path: value}


@pytest.fixture(scope="module")
def served_spec_schema(k8s_api: ApiClient, operator) -> dict[str, Any]:
    """The spec schema as the API server serves it (the CRD the operator fixture installed)."""
    crd = client.ApiextensionsV1Api(k8s_api).read_custom_resource_definition(constants.CRD_NAME)
    served = k8s_api.sanitize_for_serialization(crd)
    return served["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_every_field_of_the_crd_has_a_consumer_here(served_spec_schema):
    leaves = schema_leaves(served_spec_schema)

    assert leaves - set(HONOURED) == set(), "fields of the CRD this contract does not cover"
    assert set(HONOURED) - leaves == set(), "fields this contract names that the CRD no longer has"


def test_the_kitchen_sink_sets_every_field_of_the_crd(served_spec_schema):
    set_here = set(value_leaves(kitchen_sink("http://127.0.0.1:1/execute")))

    assert schema_leaves(served_spec_schema) - set_here == set()


@pytest.mark.parametrize("path", sorted(HONOURED))
def test_each_fields_consumer_reads_it(path: str):
    honour = HONOURED[path]
    package = REPO / PACKAGES[honour.by]
    reads = re.compile(rf"\.{honour.reads}\b")

    assert any(reads.search(source.read_text()) for source in package.rglob("*.py")), (
        f"{PACKAGES[honour.by]} never reads .{honour.reads}, so spec.{path} would be ignored")


# -- the kitchen sink on the devcluster ----------------------------------------------------------


@pytest.fixture(scope="module")
def recorder():
    started = Recorder().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def sink(k8s_api: ApiClient, operator, recorder: Recorder):
    """The kitchen sink, Ready, with its Secrets; each member's state holds its own cursor."""
    core = client.CoreV1Api(k8s_api)
    agc = client.CustomObjectsApi(k8s_api)
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(body={"metadata": {"name": namespace}})
    for secret, data in SECRETS.items():
        core.create_namespaced_secret(namespace, {"metadata": {"name": secret}, "stringData": data})
    applied = {**manifest(NAME, 0), "spec": kitchen_sink(recorder.url)}
    created = ac.create(agc, namespace, applied)
    members = ac.ready_members(agc, namespace, NAME, applied["spec"]["replicas"], timeout=120)
    for member in members:
        for key, value in (("cursor", f"{member['name']}-cursor"), ("other", "never sent")):
            ac.query(operator.database_url,
                     "INSERT INTO agent_state (namespace, cluster, replica, key, value, size_bytes) "
                     "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
                     namespace, NAME, member["name"], key, json.dumps(value), len(json.dumps(value)))
    yield {"namespace": namespace, "spec": applied["spec"], "created": created, "members": members,
           "agc": agc, "core": core}
    core.delete_namespace(namespace, propagation_policy="Background")


def test_the_api_server_accepts_the_kitchen_sink_as_written(sink):
    served = sink["created"]["spec"]

    assert value_leaves(served, indexed=True).items() >= value_leaves(sink["spec"], indexed=True).items()


def test_the_operator_runs_one_pod_per_replica_with_the_image(sink):
    pods = ac.pods_of(sink["core"], sink["namespace"], NAME)

    assert len(pods) == sink["spec"]["replicas"]
    assert {pod.spec.containers[0].image for pod in pods} == {IMAGE}


def test_every_pod_carries_the_image_pull_secrets(sink):
    pods = ac.pods_of(sink["core"], sink["namespace"], NAME)

    assert [[ref.name for ref in pod.spec.image_pull_secrets] for pod in pods] == [[PULL_SECRET]] * len(pods)


def test_the_disruption_budget_has_the_max_unavailable(sink):
    budget = client.PolicyV1Api(sink["core"].api_client).read_namespaced_pod_disruption_budget(
        NAME, sink["namespace"])

    assert budget.spec.max_unavailable == sink["spec"]["disruption"]["maxUnavailable"]


def test_every_secret_reference_reaches_the_runtime_process(sink):
    pod = ac.pods_of(sink["core"], sink["namespace"], NAME)[0]
    environment = _process_environment(container_pid(pod))

    assert environment[secret_env.AI_API_KEY] == SECRETS["llm"]["api-key"]
    assert environment[secret_env.http_header(HTTP_FUNCTION, HEADER)] == SECRETS["source-api"]["token"]
    assert environment[secret_env.webhook_secret("gh-push")] == SECRETS["hooks"]["github"]
    assert environment[secret_env.channel_url("alerts")] == SECRETS["slack"]["webhook"]
    assert environment[secret_env.mcp_header_prefix("docs") + "Authorization"] == (
        SECRETS["docs-mcp"]["Authorization"])


def test_the_stored_spec_is_what_was_applied_and_the_runtime_keeps_every_value(sink, operator):
    rows = ac.query(operator.database_url, "SELECT generation, spec FROM cluster_configs "
                    "WHERE namespace = $1 AND cluster = $2", sink["namespace"], NAME)
    stored = json.loads(rows[0]["spec"])

    parsed = runtime_spec.parse(rows[0]["generation"], stored)

    assert (parsed.function_errors, parsed.schedule_errors) == ({}, {})
    kept = value_leaves(_runtime_view(parsed), indexed=True)
    wanted = {path: value for path, value in value_leaves(sink["spec"], indexed=True).items()
              if re.sub(r"\[\d+\]", "[]", path) not in OPERATOR_ONLY}
    assert {path: kept.get(path) for path in wanted} == wanted


def test_the_http_function_reaches_its_target_as_specified_from_each_replica(sink, recorder: Recorder):
    names = {member["name"] for member in sink["members"]}

    def each_replica_sent_its_state() -> bool:
        sent = {e.replica for e in recorder.executions() if e.body.get("state")}
        return sent >= names

    eventually(each_replica_sent_its_state, timeout=90, what="a call with state from every replica")
    calls = [e for e in recorder.executions() if e.body.get("state")]
    assert {e.method for e in calls} == {"PATCH"}
    assert {e.headers.get(HEADER) for e in calls} == {SECRETS["source-api"]["token"]}
    assert {e.replica: e.body["state"] for e in calls} == {n: {"cursor": f"{n}-cursor"} for n in names}
    assert {json.dumps(e.body["payload"]) for e in calls} == {json.dumps({"source": "kitchen"})}
    assert {(e.body["schedule"], e.body["function"]) for e in calls} == {("watch", HTTP_FUNCTION)}


def test_state_policy_delete_removes_the_state_when_the_cluster_goes(sink, operator):
    ac.delete(sink["agc"], sink["namespace"], NAME)

    eventually(lambda: not ac.exists(sink["agc"], sink["namespace"], NAME), timeout=60,
               what="the kitchen sink to be gone")
    assert ac.query(operator.database_url, "SELECT key FROM agent_state WHERE namespace = $1 "
                    "AND cluster = $2", sink["namespace"], NAME) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_accepted_by_the_api_server(devcluster, namespace: str, path: Path):
    for document in yaml.safe_load_all(path.read_text()):
        assert document is not None
    accepted = devcluster.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", str(path))

    assert accepted.returncode == 0, accepted.stderr


def _process_environment(pid: int | None) -> dict[str, str]:
    assert pid is not None, "the runtime container is not running"
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def _runtime_view(parsed: runtime_spec.RuntimeSpec) -> dict[str, Any]:
    """What the runtime parsed, on the wire's names, to compare with what was applied."""
    def dump(model: Any) -> dict[str, Any]:
        return model.model_dump(by_alias=True, exclude_none=True, mode="json")

    return {
        "ai": dump(parsed.ai) if parsed.ai else None,
        "functions": [dump(f) for f in parsed.functions.values()],
        "schedules": [dump(s) for s in parsed.schedules],
        "webhooks": [dump(w) for w in parsed.webhooks.values()],
        "channels": [dump(c) for c in parsed.channels.values()],
        "mcpServers": [dump(m) for m in parsed.mcp_servers],
        "limits": dump(parsed.limits),
    }

