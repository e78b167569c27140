"""Leader election's pure parts: timings that cannot fence are refused at start-up, the
reconcile's client refuses writes outside the leader's term before anything is sent, and the
Lease fields are written the way the API server parses them. (Elections themselves run against
a real API server: tests/e2e/operator/test_leader_election.py.)"""

from __future__ import annotations

import datetime as dt
import os

import pydantic
import pytest
from kubernetes import client

from agent_operator import leadership
from agent_operator.settings import OperatorSettings


@pytest.mark.parametrize(("duration", "deadline", "retry"), [(10, 10, 2), (15, 20, 2), (15, 10, 10)])
def test_settings_refuse_a_renew_deadline_that_does_not_fence(duration: float, deadline: float, retry: float):
    with pytest.raises(pydantic.ValidationError,
                       match="retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds"):
        OperatorSettings.model_validate({"leaderElection": {
            "leaseDurationSeconds": duration, "renewDeadlineSeconds": deadline, "retryPeriodSeconds": retry}})


def test_leader_election_is_on_by_default_with_client_gos_timings():
    election = OperatorSettings().leader_election
    assert election.enabled
    assert (election.lease_duration_seconds, election.renew_deadline_seconds,
            election.retry_period_seconds) == (15, 10, 2)
    assert election.lease_name == "agentclusters-operator"


def test_a_lease_name_that_is_not_a_dns_subdomain_is_refused():
    with pytest.raises(pydantic.ValidationError, match="leaseName"):
        OperatorSettings.model_validate({"leaderElection": {"leaseName": "Agent Clusters"}})


def test_timing_refuses_a_deadline_past_the_lease():
    with pytest.raises(ValueError, match="must give up before any other replica"):
        leadership.Timing(lease_duration=5, renew_deadline=6, retry_period=1)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_fenced_client_refuses_writes_without_the_lease(method: str):
    # No server listens on this address: a request that got past the fence would fail differently.
    fenced = leadership.FencedApiClient(client.Configuration(host="https://127.0.0.1:9"), lambda: False, "me")
    with pytest.raises(leadership.LostLeadership, match=f"not the leader: refusing {method}"):
        fenced.call_api(method, "https://127.0.0.1:9/api/v1/namespaces/a/pods")


def test_the_fenced_client_names_its_holder_as_field_manager():
    fenced = leadership.FencedApiClient(client.Configuration(), lambda: True, "node-1_42")
    assert fenced.user_agent.split("/")[0] == "agentclusters-operator@node-1_42"


def test_micro_time_always_has_six_fraction_digits():
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert leadership.micro_time(moment) == "2026-01-02T03:04:05.000000Z"


def test_identity_is_the_pod_name_when_the_downward_api_gives_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POD_NAME", "agent-clusters-7d9f-abcde")
    assert leadership.identity() == "agent-clusters-7d9f-abcde"
    monkeypatch.delenv("POD_NAME")
    assert leadership.identity().endswith(f"_{os.getpid()}")


def test_lease_namespace_prefers_the_setting_then_the_pods_namespace(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POD_NAMESPACE", "agent-clusters")
    assert leadership.lease_namespace("ops") == "ops"
    assert leadership.lease_namespace("") == "agent-clusters"
