"""The Ready condition is what `kubectl get agc` shows: it must never read healthy while the
cluster is Degraded or held below its replicas by the namespace's quota."""

from __future__ import annotations

import datetime as dt

from agent_api import constants, models
from agent_operator import status

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _ready(members: list[models.Member], seen: status.Observation) -> models.Condition:
    found = status.conditions([], members, seen, NOW)
    return next(c for c in found if c.type == constants.CONDITION_READY)


def _member(name: str, ordinal: int, ready: bool = True) -> models.Member:
    return models.Member(name=name, ordinal=ordinal, pod=f"c-{name}", phase="Running", ready=ready)


def test_a_refused_spec_with_no_members_is_not_ready():
    """The reconcile reports a refused spec with desired = the live members (none): every
    count matches, and yet nothing the user asked for runs."""
    seen = status.Observation(generation=2, desired=0, config_error="spec rejected: spec.image ...")

    ready = _ready([], seen)

    assert (ready.status, ready.reason) == ("False", "ConfigNotStored")
    assert "spec rejected" in (ready.message or "")


def test_a_failing_replica_makes_ready_false_with_the_degraded_reason():
    seen = status.Observation(generation=1, desired=1, failing={"daring-duck": "CrashLoopBackOff: back-off"})

    ready = _ready([_member("daring-duck", 0, ready=False)], seen)

    assert (ready.status, ready.reason) == ("False", "ReplicaFailing")


def test_a_cluster_held_below_its_replicas_by_quota_is_not_ready_and_says_quota():
    seen = status.Observation(generation=1, desired=3, quota_message='namespace "t" has 2 agent slots')

    ready = _ready([_member("a-a", 0), _member("b-b", 1)], seen)

    assert (ready.status, ready.reason) == ("False", "QuotaExceeded")
    assert 'has 2 agent slots' in (ready.message or "")


def test_all_desired_replicas_ready_and_nothing_wrong_is_ready():
    seen = status.Observation(generation=1, desired=2)

    ready = _ready([_member("a-a", 0), _member("b-b", 1)], seen)

    assert (ready.status, ready.reason) == ("True", "AllReplicasReady")


def test_a_refused_pod_makes_degraded_and_ready_say_so_with_the_api_servers_message():
    refusal = '403 Forbidden: pods "c-b-b" is forbidden: exceeded quota: one-pod'
    seen = status.Observation(generation=1, desired=2, refused={"b-b": refusal},
                              failing={"a-a": "CrashLoopBackOff: back-off"})

    found = {c.type: c for c in status.conditions([], [_member("a-a", 0), _member("b-b", 1, ready=False)],
                                                  seen, NOW)}

    degraded = found[constants.CONDITION_DEGRADED]
    assert (degraded.status, degraded.reason) == ("True", constants.EVENT_POD_CREATE_REFUSED)
    assert degraded.message == status.refused_message("b-b", refusal)
    assert (found[constants.CONDITION_READY].status, found[constants.CONDITION_READY].reason) == (
        "False", constants.EVENT_POD_CREATE_REFUSED)


def test_a_foreign_disruption_budget_makes_degraded_say_so():
    seen = status.Observation(generation=1, desired=2, budget_error="PodDisruptionBudget t/c exists ...")

    found = {c.type: c for c in status.conditions([], [_member("a-a", 0), _member("b-b", 1)], seen, NOW)}

    assert (found[constants.CONDITION_DEGRADED].status, found[constants.CONDITION_DEGRADED].reason) == (
        "True", status.BUDGET_CONFLICT)


def test_a_container_the_kubelet_cannot_configure_is_a_failure_with_its_message():
    """E.g. runAsNonRoot with an image whose user is a name, or a missing Secret key."""
    why = "container has runAsNonRoot and image has non-numeric user (agent), cannot verify user is non-root"
    pod = {"metadata": {"name": "c-a-a"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "runtime", "state": {"waiting": {"reason": "CreateContainerConfigError", "message": why}}}]}}

    assert status.failure_of(pod) == f"CreateContainerConfigError: {why}"
