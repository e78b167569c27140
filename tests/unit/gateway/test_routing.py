"""Which replica gets a message: least in flight, ties round-robin, pinned or a clear refusal."""

from __future__ import annotations

import asyncio
import datetime
import logging

import pytest
from kubernetes import client

from agent_api import constants
from agent_gateway import errors, routing


def live(name: str, in_flight: int = 0, ready: bool = True) -> routing.Live:
    return routing.Live(name=name, address=f"http://{name}", ready=ready, in_flight=in_flight, ordinal=0)


def test_least_in_flight_wins():
    chosen = routing.choose([live("a", 2), live("b", 0), live("c", 1)], turn=0)
    assert chosen.name == "b"


def test_ties_go_round_robin_by_name():
    candidates = [live("c"), live("a"), live("b"), live("d", 3)]
    assert [routing.choose(candidates, turn).name for turn in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_not_ready_replicas_are_never_chosen():
    assert routing.choose([live("a", 0, ready=False), live("b", 9)], turn=0).name == "b"
    assert routing.choose([live("a", ready=False)], turn=0) is None
    assert routing.choose([], turn=3) is None


AGENT = {"metadata": {"name": "scraper"}, "spec": {"replicas": 2},
         "status": {"readyReplicas": 1,
                    "members": [{"name": "able-ant", "ordinal": 0, "phase": "Running", "ready": True},
                                {"name": "brave-bee", "ordinal": 1, "phase": "Pending", "ready": False}],
                    "archived": [{"name": "calm-cat", "ordinal": 2, "archivedAt": "2025-01-01T00:00:00Z"}]}}


def test_pinned_live_replica():
    assert routing.pinned(AGENT, "able-ant", [live("able-ant")]).name == "able-ant"


def test_pinned_archived_replica_says_so_and_lists_the_live_ones():
    with pytest.raises(errors.GatewayError) as refused:
        routing.pinned(AGENT, "calm-cat", [live("able-ant")])
    message = str(refused.value)
    assert 'replica "calm-cat" of agent "scraper" is archived' in message
    assert "2025-01-01T00:00:00Z" in message and "Live replicas: able-ant, brave-bee" in message


def test_pinned_unknown_replica():
    with pytest.raises(errors.GatewayError) as refused:
        routing.pinned(AGENT, "dizzy-dog", [live("able-ant")])
    assert 'has no replica named "dizzy-dog". Live replicas: able-ant, brave-bee' in str(refused.value)


def test_pinned_replica_not_ready_yet():
    with pytest.raises(errors.GatewayError) as refused:
        routing.pinned(AGENT, "brave-bee", [live("able-ant"), live("brave-bee", ready=False)])
    assert '"brave-bee" of agent "scraper" is not ready yet (pod phase Pending)' in str(refused.value)


def test_no_ready_replica_message():
    assert "no ready replica yet (1 of 2 ready)" in str(routing.no_ready_replica(AGENT))
    idle = {"metadata": {"name": "idle"}, "spec": {"replicas": 0}, "status": {}}
    assert "has 0 replicas; scale_agent it" in str(routing.no_ready_replica(idle))


# --- Addresses in Redis against the pods in the API server ----------------------------------

ADDRESS = "http://10.1.2.3:8080"


def pod(ip: str | None = "10.1.2.3", *, cluster: str = "scraper", replica: str = "able-ant", port: int = 8080,
        deleting: bool = False) -> client.V1Pod:
    """A replica pod as the API server returns it (the shape agent_operator.pods builds)."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=f"{cluster}-{replica}",
            labels={constants.LABEL_CLUSTER: cluster, constants.LABEL_REPLICA: replica},
            deletion_timestamp=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) if deleting else None),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="runtime", ports=[client.V1ContainerPort(name="http", container_port=port)])]),
        status=client.V1PodStatus(pod_ip=ip),
    )


def refusal(found: client.V1Pod | None, address: str = ADDRESS) -> str | None:
    return routing.refusal(routing.view_of(found, 0.0), "scraper", "able-ant", address)


def test_the_address_of_its_own_pod_is_confirmed():
    assert refusal(pod()) is None


@pytest.mark.parametrize(("found", "address", "reason"), [
    (pod(), "http://127.0.0.1:9999", "its pod scraper-able-ant is at http://10.1.2.3:8080"),
    (pod(), "http://10.1.2.3:8081", "is at http://10.1.2.3:8080"),
    (pod(), "http://10.1.2.3:8080/", "is at http://10.1.2.3:8080"),
    (pod(), "http://evil@10.1.2.3:8080", "is at http://10.1.2.3:8080"),
    (None, ADDRESS, "there is no pod scraper-able-ant"),
    (pod(replica="brave-bee"), ADDRESS, "is not labelled as replica able-ant of agent scraper"),
    (pod(cluster="other"), ADDRESS, "is not labelled as replica able-ant of agent scraper"),
    (pod(deleting=True), ADDRESS, "its pod scraper-able-ant is being deleted"),
    (pod(ip=None), ADDRESS, "has no IP yet"),
], ids=["another listener", "another port", "another form", "userinfo", "no pod", "another replica's labels",
        "another cluster's labels", "being deleted", "no IP yet"])
def test_an_address_its_pod_does_not_confirm_is_refused_with_the_reason(found, address, reason):
    assert reason in refusal(found, address)


class CountingKube:
    """Answers pod reads from a script and counts them (the API server's side of the cache)."""

    def __init__(self, *answers: client.V1Pod | Exception | None) -> None:
        self.answers = list(answers)
        self.reads = 0

    async def pod(self, namespace: str, name: str) -> client.V1Pod | None:
        self.reads += 1
        await asyncio.sleep(0.01)  # a round trip, so concurrent callers overlap
        answer = self.answers[0] if len(self.answers) == 1 else self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_confirmed_address_is_not_read_again_within_the_ttl():
    k8s = CountingKube(pod())
    authority = routing.PodAuthority(k8s)
    assert all([await authority.confirms("ns", "scraper", "able-ant", ADDRESS) for _ in range(5)])
    assert k8s.reads == 1


async def test_concurrent_requests_for_a_cold_pod_share_one_read():
    k8s = CountingKube(pod())
    authority = routing.PodAuthority(k8s)
    answers = await asyncio.gather(*(authority.confirms("ns", "scraper", "able-ant", ADDRESS) for _ in range(20)))
    assert all(answers) and k8s.reads == 1


async def test_a_refused_address_is_read_again_at_most_once_per_recheck_interval(caplog):
    k8s = CountingKube(pod())
    authority = routing.PodAuthority(k8s, recheck_seconds=60)
    assert not any([await authority.confirms("ns", "scraper", "able-ant", "http://127.0.0.1:1") for _ in range(5)])
    assert k8s.reads == 1
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # once, not once per request
    assert "ns/scraper/able-ant" in warnings[0].getMessage() and "http://127.0.0.1:1" in warnings[0].getMessage()


async def test_a_replaced_pod_is_routed_to_once_its_new_address_is_registered():
    k8s = CountingKube(pod("10.1.2.3"), pod("10.9.9.9"))
    authority = routing.PodAuthority(k8s, recheck_seconds=0)
    assert await authority.confirms("ns", "scraper", "able-ant", ADDRESS)
    assert await authority.confirms("ns", "scraper", "able-ant", "http://10.9.9.9:8080")
    assert k8s.reads == 2


async def test_an_unreadable_pod_confirms_nothing():
    k8s = CountingKube(errors.GatewayError("reading pod 'scraper-able-ant': pods is forbidden", code="forbidden"))
    authority = routing.PodAuthority(k8s)
    assert not await authority.confirms("ns", "scraper", "able-ant", ADDRESS)


async def test_a_pod_being_deleted_is_refused_without_a_warning(caplog):
    caplog.set_level(logging.INFO, logger=routing.__name__)
    authority = routing.PodAuthority(CountingKube(pod(deleting=True)))
    assert not await authority.confirms("ns", "scraper", "able-ant", ADDRESS)
    assert [r.levelname for r in caplog.records] == ["INFO"]  # scale-down lag, not an attack
