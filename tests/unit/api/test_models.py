"""agent_api.models: good manifests parse, bad ones fail with the message a user needs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent_api import constants, models
from tests.unit.api import cases


@pytest.mark.parametrize("case", cases.INVALID, ids=lambda c: c.id)
def test_invalid_manifest_is_refused_with_a_clear_message(case: cases.Invalid) -> None:
    with pytest.raises(ValidationError) as caught:
        models.AgentCluster.model_validate(case.manifest)
    messages = models.error_messages(caught.value)
    assert any(case.python in line for line in messages), messages


def test_there_are_at_least_twenty_invalid_cases() -> None:
    assert len(cases.INVALID) >= 20
    assert len({c.id for c in cases.INVALID}) == len(cases.INVALID)


@pytest.mark.parametrize(("name", "manifest"), cases.VALID, ids=[n for n, _ in cases.VALID])
def test_valid_manifest_parses(name: str, manifest: dict) -> None:
    models.AgentCluster.model_validate(manifest)


def test_defaults_fill_an_empty_spec() -> None:
    spec = models.AgentClusterSpec.model_validate({})
    assert spec.replicas == 1
    assert spec.ai is None and spec.image is None
    assert spec.functions == [] and spec.schedules == []
    assert spec.limits.max_concurrent_runs == 4
    assert spec.limits.run_timeout_seconds == 300
    assert spec.state_policy.when_deleted == "Retain"


def test_schedule_defaults() -> None:
    spec = models.AgentClusterSpec.model_validate(
        {"functions": [cases.ECHO_FN], "schedules": [cases.schedule()]}
    )
    s = spec.schedules[0]
    assert (s.timezone, s.mode, s.enabled, s.missed_fire_policy) == ("UTC", "single", True, "skip")
    assert (s.allow_overlap, s.payload, s.backfill_limit) == (False, {}, 10)
    assert s.failure_policy == models.FailurePolicy(
        action="continue", max_consecutive_failures=3, backoff_seconds=30
    )


def test_runtime_spec_shape_round_trips() -> None:
    """The exact camelCase shape the runtime reads from PostgreSQL."""
    wire = {
        "replicas": 1,
        "functions": [{"name": "scraping.fetch", "http": {
            "url": "https://example.com/x", "method": "POST", "headers": [],
            "timeoutSeconds": 10, "retries": 2}}],
        "schedules": [{"name": "hourly", "function": "scraping.fetch", "cron": "*/5 * * * * *",
                       "timezone": "UTC", "mode": "single", "enabled": True,
                       "missedFirePolicy": "skip", "backfillLimit": 10, "missedFireGraceSeconds": 10,
                       "failurePolicy": {"action": "continue", "maxConsecutiveFailures": 3,
                                         "backoffSeconds": 30},
                       "allowOverlap": False, "payload": {}}],
        "limits": {"maxConcurrentRuns": 4, "runTimeoutSeconds": 300},
    }
    spec = models.AgentClusterSpec.model_validate(wire)
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["functions"] == wire["functions"]
    assert dumped["schedules"] == wire["schedules"]
    assert dumped["limits"]["maxConcurrentRuns"] == 4
    assert models.AgentClusterSpec.model_validate(dumped) == spec


def test_python_names_are_accepted_too() -> None:
    ai = models.AI(provider="openai", model="m", base_url="https://api.example.com/v1")
    assert ai.model_dump(by_alias=True, exclude_none=True)["baseURL"] == "https://api.example.com/v1"


def test_function_kind() -> None:
    spec = models.AgentClusterSpec.model_validate({"functions": [cases.ECHO_FN]})
    assert spec.function("echo").kind == "python"
    assert spec.function("missing") is None


def test_status_round_trips() -> None:
    status = models.AgentClusterStatus.model_validate({
        "observedGeneration": 3, "replicas": 1, "readyReplicas": 1,
        "selector": "agentclusters.io/cluster=demo", "nextOrdinal": 2,
        "members": [{"name": "daring-duck", "ordinal": 1, "pod": "demo-daring-duck",
                     "phase": "Running", "ready": True}],
        "archived": [{"name": "swift-falcon", "ordinal": 0,
                      "archivedAt": "2026-01-02T03:04:05Z"}],
        "conditions": [{"type": constants.CONDITION_READY, "status": "True",
                        "reason": "AllReplicasReady", "message": "1/1 ready",
                        "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 3}],
    })
    assert status.members[0].pod == "demo-daring-duck"
    assert status.archived[0].archived_at.year == 2026
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["archived"][0]["archivedAt"] == "2026-01-02T03:04:05Z"
    assert dumped["nextOrdinal"] == 2


def test_error_messages_use_kubernetes_field_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        models.AgentCluster.model_validate(cases.manifest(functions=[{"name": "x", "python": {}}]))
    assert models.error_messages(caught.value) == [
        "spec.functions[0].python.entrypoint: Field required"
    ]


def test_api_version_and_kind_are_fixed() -> None:
    with pytest.raises(ValidationError):
        models.AgentCluster.model_validate({**cases.manifest(), "kind": "Deployment"})
    assert models.AgentCluster().api_version == constants.API_VERSION


def test_memory_budget_limit() -> None:
    assert models.Limits().memory_max_tokens == 8000
    assert models.Limits.model_validate({"memoryMaxTokens": 500}).memory_max_tokens == 500
    with pytest.raises(ValidationError):
        models.Limits.model_validate({"memoryMaxTokens": 10})


def test_a_status_written_before_the_bound_keeps_the_newest_archived_and_counts_them_all():
    """An operator upgraded under a cluster whose status lists every archived member must
    write back a status the bounded CRD accepts, without losing the total."""
    old = {"archived": [{"name": f"name-{i}", "ordinal": i, "archivedAt": "2026-01-01T00:00:00Z"}
                        for i in range(models.ARCHIVED_IN_STATUS + 7)]}

    parsed = models.AgentClusterStatus.model_validate(old)

    assert parsed.archived_count == models.ARCHIVED_IN_STATUS + 7
    assert [a.ordinal for a in parsed.archived] == list(range(7, models.ARCHIVED_IN_STATUS + 7))



@pytest.mark.parametrize("value", [1, 3, "1%", "25%", "100%"])
def test_max_unavailable_takes_a_number_of_at_least_one_or_a_percentage(value: int | str) -> None:
    spec = models.AgentClusterSpec.model_validate({"disruption": {"maxUnavailable": value}})

    assert spec.disruption is not None and spec.disruption.max_unavailable == value


@pytest.mark.parametrize("value", [0, -1, "0%", "101%", "1", "half"])
def test_a_bad_max_unavailable_is_refused_saying_how_to_fix_it(value: int | str) -> None:
    with pytest.raises(ValidationError, match="at least 1, or a percentage from 1% to 100%"):
        models.AgentClusterSpec.model_validate({"disruption": {"maxUnavailable": value}})


def test_image_pull_secrets_are_unique_by_name() -> None:
    with pytest.raises(ValidationError, match=r"imagePullSecrets: duplicate name\(s\): reg"):
        models.AgentClusterSpec.model_validate({"imagePullSecrets": [{"name": "reg"}, {"name": "reg"}]})
