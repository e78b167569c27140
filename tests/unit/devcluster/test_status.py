"""devcluster.kubelet.status: phase and conditions, as the kubelet computes them."""

import pytest

from devcluster.kubelet.status import build_status, pod_conditions, pod_phase, with_transition_times


def pod(policy="Always", containers=("a",), init=(), gates=(), conditions=()):
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"restartPolicy": policy,
                 "containers": [{"name": n} for n in containers],
                 "initContainers": [dict(c) if isinstance(c, dict) else {"name": c} for c in init],
                 "readinessGates": [{"conditionType": g} for g in gates]},
        "status": {"conditions": list(conditions)},
    }


def running(name="a", ready=True):
    return {"name": name, "state": {"running": {"startedAt": "t"}}, "lastState": {},
            "ready": ready, "started": True, "restartCount": 0}


def terminated(name="a", code=0):
    return {"name": name, "state": {"terminated": {"exitCode": code}}, "lastState": {},
            "ready": False, "started": False, "restartCount": 0}


def waiting(name="a", last_code=None):
    last = {} if last_code is None else {"terminated": {"exitCode": last_code}}
    return {"name": name, "state": {"waiting": {"reason": "X"}}, "lastState": last,
            "ready": False, "started": False, "restartCount": 0}


@pytest.mark.parametrize(("policy", "statuses", "phase"), [
    ("Always", [waiting()], "Pending"),
    ("Always", [running()], "Running"),
    ("Always", [waiting(last_code=1)], "Running"),          # crash-looping
    ("Always", [terminated(code=0)], "Running"),            # about to restart
    ("OnFailure", [terminated(code=0)], "Succeeded"),
    ("OnFailure", [waiting(last_code=2)], "Running"),
    ("Never", [terminated(code=0)], "Succeeded"),
    ("Never", [terminated(code=3)], "Failed"),
    ("Never", [], "Pending"),
])
def test_phase(policy, statuses, phase):
    assert pod_phase(pod(policy), [], statuses) == phase


def test_phase_with_two_containers():
    p = pod("Never", containers=("a", "b"))
    assert pod_phase(p, [], [running("a"), terminated("b", 1)]) == "Running"
    assert pod_phase(p, [], [terminated("a", 0), terminated("b", 1)]) == "Failed"
    assert pod_phase(p, [], [running("a"), waiting("b")]) == "Pending"


def test_a_terminal_pod_ignores_the_restart_policy():
    assert pod_phase(pod("Always"), [], [terminated(code=143)], terminal=True) == "Failed"
    assert pod_phase(pod("Always"), [], [terminated(code=0)], terminal=True) == "Succeeded"


def test_init_containers_hold_the_pod_pending_and_fail_it_under_never():
    p = pod("Never", init=("setup",))
    assert pod_phase(p, [running("setup")], [waiting()]) == "Pending"
    assert pod_phase(p, [terminated("setup", 0)], [running()]) == "Running"
    assert pod_phase(p, [terminated("setup", 1)], [waiting()]) == "Failed"
    assert pod_phase(pod("Always", init=("setup",)), [waiting("setup", 1)], [waiting()]) == "Pending"


def test_a_sidecar_must_have_started():
    p = pod("Always", init=({"name": "side", "restartPolicy": "Always"},))
    assert pod_phase(p, [waiting("side")], [waiting()]) == "Pending"
    assert pod_phase(p, [running("side")], [running()]) == "Running"


def by_type(conditions):
    return {c["type"]: c for c in conditions}


def test_conditions_of_a_ready_pod():
    conditions = by_type(pod_conditions(pod(), [], [running()], "Running", sandbox_ready=True))
    assert {t: c["status"] for t, c in conditions.items()} == {
        "PodReadyToStartContainers": "True", "Initialized": "True",
        "ContainersReady": "True", "Ready": "True"}
    assert conditions["Ready"]["reason"] is None and conditions["Ready"]["message"] is None


def test_unready_containers_are_named():
    p = pod(containers=("a", "b"))
    conditions = by_type(pod_conditions(p, [], [running("a"), running("b", ready=False)],
                                        "Running", sandbox_ready=True))
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"
    assert conditions["Ready"]["message"] == "containers with unready status: [b]"


def test_incomplete_init_containers_are_named():
    conditions = by_type(pod_conditions(pod(init=("setup",)), [running("setup")], [waiting()],
                                        "Pending", sandbox_ready=True))
    assert conditions["Initialized"]["status"] == "False"
    assert conditions["Initialized"]["message"] == "containers with incomplete status: [setup]"


def test_readiness_gates():
    unmet = by_type(pod_conditions(pod(gates=("example.com/lb",)), [], [running()], "Running", True))
    assert unmet["Ready"]["status"] == "False"
    assert unmet["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert unmet["ContainersReady"]["status"] == "True"
    met = by_type(pod_conditions(
        pod(gates=("example.com/lb",), conditions=[{"type": "example.com/lb", "status": "True"}]),
        [], [running()], "Running", True))
    assert met["Ready"]["status"] == "True"


def test_completed_pods_are_not_ready():
    conditions = by_type(pod_conditions(pod("Never"), [], [terminated()], "Succeeded", True))
    assert conditions["Ready"]["reason"] == "PodCompleted"


def test_transition_times_are_kept_while_the_status_is_unchanged():
    first = with_transition_times([{"type": "Ready", "status": "False"}], [], "t1")
    same = with_transition_times([{"type": "Ready", "status": "False"}], first, "t2")
    flipped = with_transition_times([{"type": "Ready", "status": "True"}], same, "t3")
    assert [c["lastTransitionTime"] for c in first + same + flipped] == ["t1", "t1", "t3"]


def test_build_status_carries_addresses_and_start_time():
    status = build_status(pod(), init_statuses=[], statuses=[running()], pod_ip="127.1.0.9",
                          host_ip="127.0.0.1", start_time="t0", now="t1")
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.1.0.9" and status["podIPs"] == [{"ip": "127.1.0.9"}]
    assert status["hostIP"] == "127.0.0.1" and status["hostIPs"] == [{"ip": "127.0.0.1"}]
    assert status["startTime"] == "t0"
    assert "initContainerStatuses" not in status
