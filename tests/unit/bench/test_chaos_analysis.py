"""The soak's counting (bench/chaos/analysis.py) on small hand-made histories: each figure
means what docs/chaos.md says it means."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from bench.chaos import analysis

T0 = 1_800_000_000  # a whole second
CONFIG = SimpleNamespace(lease_seconds=10, single=1, cluster=0)


def _iso(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).isoformat()


def _execution(fire: int, replica: str, attempt: int, started: float, finished: float | None = None,
               aborted: float | None = None, schedule: str = "s00") -> dict[str, Any]:
    return {"key": f"{schedule}:{_iso(fire)}", "schedule": schedule, "fire_time": _iso(fire),
            "replica": replica, "attempt": attempt, "started": started, "finished": finished,
            "aborted": aborted, "seconds": 1.0}


def _run(fire: int, replica: str, attempt: int, status: str, started: float,
         finished: float | None) -> dict[str, Any]:
    return {"schedule": "s00", "fire_time": float(fire), "replica": replica, "attempt": attempt,
            "status": status, "started": started, "finished": finished}


def _count(executions: list[dict], runs: list[dict] | None = None, faults: list[dict] | None = None,
           t1: int = T0) -> dict[str, Any]:
    return analysis.count(executions=executions, faults=faults or [], runs=runs or [], lane_starts=[],
                          members=[], samples=[], final_members=[], t0=T0, t1=t1, config=CONFIG)


def test_a_released_run_and_its_rerun_by_the_same_replica_and_attempt_are_one_completion():
    executions = [_execution(T0, "a", 1, T0 + 0.5, finished=T0 + 2.5),
                  _execution(T0, "a", 1, T0 + 20.0, finished=T0 + 21.0)]
    runs = [_run(T0, "a", 1, "released", T0 + 0.4, T0 + 2.6), _run(T0, "a", 1, "succeeded", T0 + 19.9, T0 + 21.1)]
    figures = _count(executions, runs)
    assert (figures["duplicate_completions"], figures["work_finished_twice"]) == (0, 1)


def test_two_accepted_completions_of_one_fire_are_a_duplicate():
    executions = [_execution(T0, "a", 1, T0 + 0.5, finished=T0 + 1.5),
                  _execution(T0, "b", 2, T0 + 12.0, finished=T0 + 13.0)]
    runs = [_run(T0, "a", 1, "succeeded", T0 + 0.4, T0 + 1.6), _run(T0, "b", 2, "succeeded", T0 + 11.9, T0 + 13.1)]
    assert _count(executions, runs)["duplicate_completions"] == 1


def test_an_execution_that_starts_before_another_one_of_the_fire_has_ended_is_concurrent():
    executions = [_execution(T0, "b", 2, T0 + 12.0, finished=T0 + 15.0),
                  _execution(T0, "a", 1, T0 + 13.0, aborted=T0 + 13.01)]
    assert _count(executions)["concurrent_executions"] == 1


def test_a_due_fire_without_a_finished_execution_is_missed():
    figures = _count([_execution(T0, "a", 1, T0 + 0.5, aborted=T0 + 1.0)], t1=T0 + 1)
    assert (figures["fires_due"], figures["missed_fires"]) == (2, 2)


def test_a_reexecution_after_a_fault_on_the_previous_replica_is_explained_and_otherwise_not():
    executions = [_execution(T0, "a", 1, T0 + 0.5, aborted=T0 + 8.0),
                  _execution(T0, "b", 2, T0 + 11.0, finished=T0 + 12.0)]
    stop = {"kind": "sigstop", "start": T0 + 1.0, "end": T0 + 15.0, "targets": ["a"], "detail": {}}
    other = {**stop, "targets": ["c"]}
    assert _count(executions, faults=[stop])["reexecutions_unexplained"] == 0
    assert _count(executions, faults=[other])["reexecutions_unexplained"] == 1
