"""Counting the soak from outside: what the recorder saw, held against the faults.

The unit of work is a *fire* in single mode (schedule, fire time) and a *(fire, replica)* in
cluster mode, where every live replica runs each fire. Definitions, for fires whose time is
in the window [t0, t1] (whole seconds):

- **due**: every second of the window for each single-mode schedule; in cluster mode, every
  second of the window from the replica's lane start for each replica that is a member when
  the soak ends (a replica scaled away stops running its lane, by design; one that joined
  starts its lane when it first plans it).
- **completed**: at least one execution finished (the recorder answered before the replica
  hung up).
- **missed**: due and not completed once the soak has drained. A fire the scheduler recorded
  `missed` by its missed-fire policy counts too: the soak's grace is longer than the soak, so
  the policy never applies to a fire the system could still run, and one it did apply to is
  a fire nobody ran.
- **duplicate completion**: one unit with two finished executions that the runtime accepted.
  A finished execution whose run the runtime refused by fencing (`rejected`) or handed back
  (`released`) did its work, but its completion was not accepted: it is counted as
  *work finished twice* (the at-least-once cost of a replica frozen past its lease, which
  the idempotency key lets a function drop), never as a completion.
- **concurrent execution**: two executions of one unit overlapping in time (start to finish
  or hang-up; one never ended counts as running until the end).
- **re-execution**: every start of a unit after its first; *explained* when a fault hit the
  replica that ran the previous execution (or every replica: PostgreSQL restarted or
  blackholed) between a lease before that execution started and the re-execution's start.
- **failover time**: for units executed more than once, fire time → the start of the
  execution whose completion was accepted.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import statistics
from collections import defaultdict
from typing import Any

from bench.chaos import faults as fault_kinds

# An execution with no run row is judged accepted (the stricter reading). Run rows carry the
# database's times, executions the recorder's: one machine, one clock, but the row is written
# by another process a moment apart.
CLOCK_SLACK = 0.05
NOT_ACCEPTED = ("rejected", "released")
EXAMPLES = 20  # offending units listed in the result, for a reader to chase


def fire_second(iso: str) -> int:
    return round(dt.datetime.fromisoformat(iso).timestamp())


def _unit(execution: dict[str, Any]) -> tuple[str, int, str]:
    replica = execution["replica"] if execution["schedule"].startswith("c") else ""
    return execution["schedule"], fire_second(execution["fire_time"]), replica


def count(*, executions: list[dict[str, Any]], faults: list[dict[str, Any]],
          runs: list[dict[str, Any]], lane_starts: list[dict[str, Any]],
          members: list[dict[str, Any]], samples: list[dict[str, Any]],
          final_members: list[dict[str, Any]], t0: float, t1: float, config: Any) -> dict[str, Any]:
    lease = config.lease_seconds
    seconds = list(range(int(t0), int(t1) + 1))
    by_unit: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for execution in executions:
        unit = _unit(execution)
        if t0 <= unit[1] <= t1:
            by_unit[unit].append(execution)
    for listed in by_unit.values():
        listed.sort(key=lambda e: e["started"])

    # One replica may run one attempt of a fire more than once: a fire handed back at shutdown
    # (`released`) keeps its attempt number. So an execution is matched to the run row of its
    # (fire, replica, attempt) that was open when it started (both clocks are this machine's).
    rows: dict[tuple[str, int, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        rows[(r["schedule"], round(r["fire_time"]), r["replica"], r["attempt"])].append(r)
    for listed in rows.values():
        listed.sort(key=lambda r: r["started"])

    def accepted(execution: dict[str, Any]) -> bool:
        key = (execution["schedule"], fire_second(execution["fire_time"]), execution["replica"],
               execution["attempt"])
        started = execution["started"]
        before = [r for r in rows.get(key, []) if r["started"] <= started + CLOCK_SLACK]
        open_then = [r for r in before if r["finished"] is None or r["finished"] >= started - CLOCK_SLACK]
        row = (open_then or before or [None])[-1]
        return row is None or row["status"] not in NOT_ACCEPTED

    # -- due -----------------------------------------------------------------------------
    single = [f"s{i:02d}" for i in range(config.single)]
    cluster = [f"c{i:02d}" for i in range(config.cluster)]
    due = [(s, t, "") for s in single for t in seconds]
    final_names = {m["name"] for m in final_members if m.get("phase") != "Terminating"}
    lane_start = {(r["schedule"], r["replica"]): r["first_fire"] for r in lane_starts}
    cluster_due = [(s, t, name) for s in cluster for name in sorted(final_names)
                   for t in seconds if (s, name) in lane_start and t >= round(lane_start[(s, name)])]
    # -- per unit ------------------------------------------------------------------------
    missed, duplicates, twice, concurrent = [], [], [], []
    reexecutions, unexplained, failovers = [], [], []
    end_of_observation = max([e["started"] for e in executions] + [t1]) + 1
    for unit in itertools.chain(due, cluster_due):
        listed = by_unit.get(unit, [])
        if not any(e["finished"] is not None for e in listed):
            missed.append(unit)
    for unit, listed in by_unit.items():
        finished = [e for e in listed if e["finished"] is not None]
        if len(finished) > 1:
            twice.append(unit)
            if sum(accepted(e) for e in finished) > 1:
                duplicates.append(unit)
        for a, b in itertools.combinations(listed, 2):
            a_end = a["finished"] or a["aborted"] or end_of_observation
            b_end = b["finished"] or b["aborted"] or end_of_observation
            if a["started"] < b_end and b["started"] < a_end:
                concurrent.append(unit)
                break
        for previous, again in itertools.pairwise(listed):
            reexecutions.append(unit)
            cause = _explaining_fault(previous, again, faults, lease)
            if cause is None:
                unexplained.append({"unit": list(unit), "previous": previous, "again": again})
        if len(listed) > 1:
            winners = [e for e in finished if accepted(e)]
            if winners:
                failovers.append(winners[-1]["started"] - unit[1])
    # -- the runtime's own records ------------------------------------------------------
    statuses = defaultdict(int)
    for r in runs:
        statuses[r["status"]] += 1
    # -- lateness and cluster coverage --------------------------------------------------
    lateness = [listed[0]["started"] - unit[1] for unit, listed in by_unit.items() if not unit[2]]
    coverage = _cluster_coverage(by_unit, cluster, seconds, samples)
    return {
        "fires_due": len(due) + len(cluster_due),
        "single_fires_due": len(due),
        "cluster_runs_due": len(cluster_due),
        "fires_completed": len(due) + len(cluster_due) - len(missed),
        "executions": sum(len(v) for v in by_unit.values()),
        "duplicate_completions": len(duplicates),
        "work_finished_twice": len(twice),
        "concurrent_executions": len(concurrent),
        "reexecutions": len(reexecutions),
        "reexecutions_unexplained": len(unexplained),
        "missed_fires": len(missed),
        "missed_by_policy": statuses.get("missed", 0),
        "completions_rejected_by_fencing": statuses.get("rejected", 0),
        "runs_released": statuses.get("released", 0),
        "run_statuses": dict(statuses),
        "failover_seconds": _distribution(failovers),
        "lateness_seconds": _distribution(lateness),
        "cluster_mode": coverage,
        "names": _names(members, samples),
        "lease_seconds": lease,
        "examples": {
            "missed": [list(u) for u in missed[:EXAMPLES]],
            "duplicates": [[list(u), by_unit[u]] for u in duplicates[:EXAMPLES]],
            "concurrent": [[list(u), by_unit[u]] for u in concurrent[:EXAMPLES]],
            "unexplained_reexecutions": unexplained[:EXAMPLES],
        },
    }


def _explaining_fault(previous: dict[str, Any], again: dict[str, Any], faults: list[dict[str, Any]],
                      lease: float) -> dict[str, Any] | None:
    for fault in faults:
        hits = fault["kind"] in fault_kinds.SYSTEM_WIDE or previous["replica"] in fault["targets"]
        if hits and fault["start"] <= again["started"] and fault["end"] >= previous["started"] - lease:
            return fault
    return None


def _distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {"count": len(ordered), "p50": round(statistics.median(ordered), 3),
            "p99": round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)], 3),
            "max": round(ordered[-1], 3)}


def _live_at(samples: list[dict[str, Any]], times: list[float], t: float) -> int | None:
    index = bisect.bisect_right(times, t) - 1
    if index < 0:
        return None
    return sum(1 for m in samples[index]["members"] if m.get("phase") != "Terminating")


def _cluster_coverage(by_unit: dict, cluster: list[str], seconds: list[int],
                      samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cluster-mode fire: replicas that completed it vs members at its time (not
    Terminating, from the status read last before it: a replica restarting or not yet ready
    is still a member whose lane runs)."""
    times = [s["t"] for s in samples]
    equal = fewer = more = 0
    ratios = []
    per_fire: dict[tuple[str, int], set[str]] = defaultdict(set)
    for unit, listed in by_unit.items():
        if unit[2] and any(e["finished"] is not None for e in listed):
            per_fire[(unit[0], unit[1])].add(unit[2])
    for schedule in cluster:
        for t in seconds:
            live = _live_at(samples, times, t)
            if live is None:
                continue
            ran = len(per_fire.get((schedule, t), ()))
            equal += ran == live
            fewer += ran < live
            more += ran > live
            if live:
                ratios.append(ran / live)
    return {"fires": equal + fewer + more, "runs_equal_live": equal, "runs_fewer_than_live": fewer,
            "runs_more_than_live": more,
            "mean_runs_per_live_replica": round(statistics.fmean(ratios), 4) if ratios else None}


def _names(members: list[dict[str, Any]], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Names are never reused: one ordinal per name, and no name live again once archived."""
    ordinals: dict[str, set[int]] = defaultdict(set)
    archived_at = {m["name"]: m["archived_at"] for m in members}
    for m in members:
        ordinals[m["name"]].add(m["ordinal"])
    revived = set()
    for sample in samples:
        for m in sample["members"]:
            ordinals[m["name"]].add(m["ordinal"])
            gone = archived_at.get(m["name"])
            if gone is not None and sample["t"] > gone + 1 and m.get("phase") != "Terminating":
                revived.add(m["name"])
    reused = sorted({n for n, o in ordinals.items() if len(o) > 1} | revived)
    return {"total": len(ordinals), "archived": sum(1 for m in members if m["archived_at"]),
            "reused": len(reused), "reused_names": reused}


def timeline(executions: list[dict[str, Any]], t0: float, t1: float) -> dict[str, list]:
    """Per second of the window: the median and the worst lateness (first start - fire time)
    of the fires due that second, single and cluster mode apart; for the plot."""
    first: dict[tuple[str, int, str], float] = {}
    for e in executions:
        unit = _unit(e)
        if t0 <= unit[1] <= t1:
            first[unit] = min(first.get(unit, math.inf), e["started"])
    rows: dict[int, dict[str, list[float]]] = defaultdict(lambda: {"single": [], "cluster": []})
    for (_schedule, t, replica), started in first.items():
        rows[t]["cluster" if replica else "single"].append(started - t)
    out: dict[str, list] = {"t": [], "single_median": [], "single_max": [], "cluster_median": [],
                            "cluster_max": []}
    for t in sorted(rows):
        out["t"].append(round(t - t0))
        for mode in ("single", "cluster"):
            values = rows[t][mode]
            out[f"{mode}_median"].append(round(statistics.median(values), 3) if values else None)
            out[f"{mode}_max"].append(round(max(values), 3) if values else None)
    return out
