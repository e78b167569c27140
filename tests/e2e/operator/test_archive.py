"""The archive: `status.archived` keeps the newest few members and a count, PostgreSQL keeps
them all, and no name the namespace ever had is given out again, however long ago it was
archived and whatever happened to its cluster since."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import constants, models
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest
from tests.e2e.operator.test_names import allocated_names, clusters_with_same_first_candidate

pytestmark = pytest.mark.e2e

CYCLES = 300
# An AgentCluster with one member and a full archive window is ~6 KB of JSON; one that kept
# every archived member would pass this after ~100 cycles and reach etcd's 1.5 MB in ~15,000.
MAX_OBJECT_BYTES = 16_000


def _live_names(obj: dict) -> list[str]:
    members = (obj.get("status") or {}).get("members") or []
    return [m["name"] for m in sorted(members, key=lambda m: m["ordinal"]) if m.get("phase") != "Terminating"]


def _scale_cycle(agc, namespace: str, cluster: str, base: int) -> str:
    """Scale base -> base + 1 -> base; the name of the member that came and went."""
    before = set(_live_names(ac.get(agc, namespace, cluster)))
    ac.scale(agc, namespace, cluster, base + 1)
    added = eventually(lambda: set(_live_names(ac.get(agc, namespace, cluster))) - before,
                       timeout=60, interval=0.05, what=f"a member added to {cluster}")
    (name,) = added
    ac.scale(agc, namespace, cluster, base)

    def archived() -> dict | None:
        obj = ac.get(agc, namespace, cluster)
        gone = all(m["name"] != name for m in obj["status"].get("members") or [])
        return obj if gone else None

    eventually(archived, timeout=60, interval=0.05, what=f"{name} of {cluster} archived")
    return name


def test_hundreds_of_scale_cycles_keep_the_object_bounded_and_never_reuse_a_name(agc, namespace, operator):
    cluster = "flapper"
    ac.create(agc, namespace, manifest(cluster, 1))
    eventually(lambda: len(_live_names(ac.get(agc, namespace, cluster))) == 1, what="the first member")
    given: list[str] = _live_names(ac.get(agc, namespace, cluster))
    largest = 0

    for cycle in range(CYCLES):
        given.append(_scale_cycle(agc, namespace, cluster, 1))
        obj = ac.get(agc, namespace, cluster)
        largest = max(largest, len(json.dumps(obj)))
        status = obj["status"]
        assert len(status.get("archived") or []) <= models.ARCHIVED_IN_STATUS, f"cycle {cycle}"
        assert largest <= MAX_OBJECT_BYTES, f"cycle {cycle}: {largest} bytes"

    status = ac.status(agc, namespace, cluster)
    assert len(set(given)) == len(given) == CYCLES + 1
    assert status["archivedCount"] == CYCLES
    assert [a["name"] for a in status["archived"]] == given[-models.ARCHIVED_IN_STATUS:]
    ordinals = [a["ordinal"] for a in status["archived"]]
    assert ordinals == sorted(ordinals) and status["nextOrdinal"] == CYCLES + 1
    rows = ac.query(operator.database_url,
                    "SELECT replica, archived_at IS NOT NULL AS archived FROM cluster_members"
                    " WHERE namespace = $1 AND cluster = $2", namespace, cluster)
    assert {r["replica"] for r in rows} == set(given)
    assert sum(r["archived"] for r in rows) == CYCLES


def test_a_name_archived_beyond_the_status_window_is_never_given_out_again(
        agc, k8s_api: ApiClient, namespace: str):
    core = client.CoreV1Api(k8s_api)
    elder, younger, shared_first = clusters_with_same_first_candidate()
    ac.create(agc, namespace, manifest(elder, 1))
    assert allocated_names(agc, core, namespace, elder, 1) == [shared_first]
    ac.scale(agc, namespace, elder, 0)
    eventually(lambda: ac.status(agc, namespace, elder).get("archivedCount") == 1, what=f"{shared_first} archived")
    for _ in range(models.ARCHIVED_IN_STATUS + 2):  # push it out of status.archived
        _scale_cycle(agc, namespace, elder, 0)
    status = ac.status(agc, namespace, elder)
    assert shared_first not in {a["name"] for a in status["archived"]}
    assert status["archivedCount"] == models.ARCHIVED_IN_STATUS + 3

    ac.create(agc, namespace, manifest(younger, 1))

    assert allocated_names(agc, core, namespace, younger, 1) != [shared_first]


def test_a_cluster_recreated_after_a_delete_policy_deletion_gets_new_names_and_later_ordinals(
        agc, k8s_api: ApiClient, namespace: str):
    """statePolicy Delete removes the members' rows from PostgreSQL; their names must still
    never come back (conversation turns and channel deliveries stay stored under them)."""
    core = client.CoreV1Api(k8s_api)
    deleting = manifest("phoenix", 2, statePolicy={"whenDeleted": "Delete"})
    ac.create(agc, namespace, deleting)
    first = allocated_names(agc, core, namespace, "phoenix", 2)
    eventually(lambda: constants.FINALIZER in (ac.get(agc, namespace, "phoenix")["metadata"].get("finalizers") or []),
               what="the state-policy finalizer")
    ac.delete(agc, namespace, "phoenix")
    eventually(lambda: not ac.exists(agc, namespace, "phoenix"), what="phoenix to be deleted")

    ac.create(agc, namespace, deleting)

    second = allocated_names(agc, core, namespace, "phoenix", 2)
    assert not set(first) & set(second)
    assert sorted(m["ordinal"] for m in ac.status(agc, namespace, "phoenix")["members"]) == [2, 3]


def test_a_settled_cluster_with_archived_members_is_not_rewritten(agc, namespace):
    """The status read back from the API server equals the one the reconcile computes from
    PostgreSQL (timestamps included), so a settled cluster costs no writes."""
    ac.create(agc, namespace, manifest("settled", 1))
    ac.ready_members(agc, namespace, "settled", 1)
    for _ in range(3):
        _scale_cycle(agc, namespace, "settled", 1)
    ac.ready_members(agc, namespace, "settled", 1)
    before = ac.get(agc, namespace, "settled")["metadata"]["resourceVersion"]

    time.sleep(5)  # the operator keeps looking (BUSY_REQUEUE_SECONDS is 2 s while anything moves)

    assert ac.get(agc, namespace, "settled")["metadata"]["resourceVersion"] == before
