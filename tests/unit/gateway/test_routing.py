"""Which replica gets a message: least in flight, ties round-robin, pinned or a clear refusal."""

from __future__ import annotations

import pytest

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
