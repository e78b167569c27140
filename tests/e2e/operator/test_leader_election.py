"""Operator HA: of several operators exactly one holds the Lease and reconciles; when it dies
(SIGKILL) or freezes (SIGSTOP) mid scale-up another takes over within the lease, the cluster
converges with exactly its members and their pods, and a frozen leader that wakes up writes
nothing more.

Who wrote what is read from the API server itself: the reconcile's writes carry the field
manager `agentclusters-operator@<holder identity>` in each object's managedFields."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest
from tests.e2e.operator.operators import (
    LEASE_NAME,
    LEASE_NAMESPACE,
    RETRY_SECONDS,
    TAKEOVER_SECONDS,
    OperatorGroup,
    operator_writes,
    wait_seconds,
)

pytestmark = pytest.mark.e2e


def writers(core: client.CoreV1Api, agc: client.CustomObjectsApi, namespace: str, name: str) -> set[str]:
    """Every operator replica that wrote the AgentCluster or one of its pods."""
    found = {m for m, _ in operator_writes(ac.get(agc, namespace, name)["metadata"].get("managedFields"))}
    for pod in ac.pods_of(core, namespace, name):
        found |= {m for m, _ in operator_writes(pod.metadata.managed_fields)}
    return found


def writes_after(core: client.CoreV1Api, agc: client.CustomObjectsApi, namespace: str, name: str,
                 manager: str, moment: dt.datetime) -> list[str]:
    """Objects that `manager` wrote after `moment` (managedFields keep each manager's last write,
    to the second: `moment` is rounded down)."""
    moment = moment.replace(microsecond=0)
    late = [f"agentcluster {name} at {when}" for m, when in
            operator_writes(ac.get(agc, namespace, name)["metadata"].get("managedFields"))
            if m == manager and when > moment]
    for pod in ac.pods_of(core, namespace, name):
        late += [f"pod {pod.metadata.name} at {when}" for m, when in operator_writes(pod.metadata.managed_fields)
                 if m == manager and when > moment]
    return late


def assert_converged(core: client.CoreV1Api, agc: client.CustomObjectsApi, database_url: str,
                     namespace: str, name: str, replicas: int) -> list[dict]:
    """Exactly `replicas` ready members, unique names, one pod per member and no other pod."""
    members = ac.ready_members(agc, namespace, name, replicas, timeout=180)
    names = [m["name"] for m in members]
    assert len(set(names)) == replicas, names
    assert len({m["ordinal"] for m in members}) == replicas, members
    pods = ac.pods_of(core, namespace, name)
    assert sorted(p.metadata.name for p in pods) == sorted(m["pod"] for m in members)
    assert not [p.metadata.name for p in core.list_namespaced_pod(namespace).items
                if not p.metadata.owner_references]
    # PostgreSQL records each name once; every member's name is among them.
    recorded = [row["replica"] for row in ac.query(
        database_url, "SELECT replica FROM cluster_members WHERE namespace = $1", namespace)]
    assert len(recorded) == len(set(recorded)), recorded
    assert set(names) <= set(recorded)
    return members


def test_exactly_one_operator_holds_the_lease_and_only_it_reconciles(
        operator_group: OperatorGroup, agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    leader = operator_group.leader()
    [follower] = operator_group.others(leader)
    ac.create(agc, namespace, manifest("solo", 2))
    ac.ready_members(agc, namespace, "solo", 2)

    assert writers(core, agc, namespace, "solo") == {operator_group.field_manager(leader)}
    assert operator_group.holder() is leader
    follower_log = operator_group.log(follower)
    assert (f"leader election: waiting; Lease {LEASE_NAMESPACE}/{LEASE_NAME} is held by "
            f"{operator_group.identity(leader)}") in follower_log
    assert "acquired Lease" not in follower_log
    assert "acquired Lease" in operator_group.log(leader)
    assert (operator_group.leader_gauge(leader), operator_group.leader_gauge(follower)) == (1, 0)


def test_a_killed_leader_is_replaced_within_the_lease_and_the_scale_up_converges(
        operator_group: OperatorGroup, operator, agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    leader = operator_group.leader()
    ac.create(agc, namespace, manifest("relay", 0))
    eventually(lambda: ac.status(agc, namespace, "relay").get("conditions"), what="a first reconcile")
    ac.scale(agc, namespace, "relay", 6)
    eventually(lambda: len(ac.pods_of(core, namespace, "relay")) >= 2, interval=0.02,
               what="the scale-up to be under way")

    killed = time.monotonic()
    operator_group.kill(leader)
    successor = operator_group.leader(other_than=leader, timeout=TAKEOVER_SECONDS + 30)
    took = time.monotonic() - killed

    assert took <= TAKEOVER_SECONDS, f"the takeover took {took:.1f}s"
    assert_converged(core, agc, operator.database_url, namespace, "relay", 6)
    assert operator_group.field_manager(successor) in writers(core, agc, namespace, "relay")


def test_a_frozen_leader_is_replaced_and_writes_nothing_once_it_wakes_up(
        operator_group: OperatorGroup, operator, agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    leader = operator_group.leader()
    ac.create(agc, namespace, manifest("sleeper", 0))
    eventually(lambda: ac.status(agc, namespace, "sleeper").get("conditions"), what="a first reconcile")
    ac.scale(agc, namespace, "sleeper", 6)
    eventually(lambda: len(ac.pods_of(core, namespace, "sleeper")) >= 2, interval=0.02,
               what="the scale-up to be under way")

    frozen_at = dt.datetime.now(dt.UTC)
    operator_group.freeze(leader)
    try:
        successor = operator_group.leader(other_than=leader, timeout=TAKEOVER_SECONDS + 30)
        members = assert_converged(core, agc, operator.database_url, namespace, "sleeper", 6)
        pods = {p.metadata.name: p.metadata.uid for p in ac.pods_of(core, namespace, "sleeper")}
    finally:
        operator_group.thaw(leader)

    eventually(lambda: "stopped reconciling" in operator_group.log(leader), timeout=30,
               what="the woken leader to notice it lost the Lease")
    # Several of its retry periods and one resync: a leader that believed it still led would
    # have renewed, reconciled and written by now.
    wait_seconds(max(3 * RETRY_SECONDS, 6.0))

    assert operator_group.holder() is successor
    assert writes_after(core, agc, namespace, "sleeper", operator_group.field_manager(leader), frozen_at) == []
    assert ac.status(agc, namespace, "sleeper")["members"] == members
    assert {p.metadata.name: p.metadata.uid for p in ac.pods_of(core, namespace, "sleeper")} == pods
    assert operator_group.lease()["transitions"] >= 1


def test_a_leader_shut_down_gracefully_releases_the_lease_for_an_immediate_takeover(
        operator_group: OperatorGroup, agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    leader = operator_group.leader()
    [follower] = operator_group.others(leader)

    leader.stop()  # SIGTERM, as a rolling update or a drain does; returns once it has exited

    # Released, not left to expire: no holder (or the follower already), at once.
    assert operator_group.lease()["holder"] in (None, "", operator_group.identity(follower))
    assert "released Lease" in operator_group.log(leader)
    assert operator_group.leader(timeout=TAKEOVER_SECONDS) is follower
    ac.create(agc, namespace, manifest("handed-over", 1))
    ac.ready_members(agc, namespace, "handed-over", 1)
    assert writers(core, agc, namespace, "handed-over") == {operator_group.field_manager(follower)}
