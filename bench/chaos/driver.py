"""The seeded fault plan and the loop that carries it out, logging every fault it injects.

The plan is drawn up front from the seed: the four one-shot system faults (PostgreSQL, Redis
and the operator restarted, the replicas' PostgreSQL blackholed for longer than the lease)
at spread-out moments in shuffled order, and a random stream of replica faults (SIGKILL,
SIGSTOP/SIGCONT, pod deleted, scale to 3-7) with exponential gaps. Which replica a replica
fault hits is drawn from the same generator when it happens, among the pods running then,
so a run is reproducible as far as the cluster's own timing allows. The one-shot faults block
(a restart, a blackhole) and run in threads of their own, so the replica faults keep coming
meanwhile, as they would in a real bad hour.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos import faults

log = logging.getLogger("chaos.driver")

ONE_SHOTS = ("restart_postgres", "restart_redis", "restart_operator", "blackhole_postgres")
REPLICA_WEIGHTS = {"sigkill": 3, "sigstop": 3, "delete_pod": 2, "scale": 2}
MIN_REPLICAS, MAX_REPLICAS = 3, 7


@dataclass(order=True)
class Planned:
    at: float  # seconds after the soak's start
    kind: str = field(compare=False)
    params: dict[str, Any] = field(compare=False, default_factory=dict)


def plan(seed: int, duration: float, lease_seconds: float, fault_every: float) -> list[Planned]:
    rng = random.Random(seed)
    planned = []
    one_shots = list(ONE_SHOTS)
    rng.shuffle(one_shots)
    for index, kind in enumerate(one_shots):
        at = duration * (0.12 + 0.66 * index / (len(one_shots) - 1)) + rng.uniform(-0.03, 0.03) * duration
        params: dict[str, Any] = {}
        if kind in ("restart_postgres", "restart_redis"):
            params["down_seconds"] = round(rng.uniform(2, 6), 1)
        if kind == "blackhole_postgres":
            # Longer than the lease: every run in flight must fence itself, and whatever the
            # replicas held must be rescued.
            params["seconds"] = round(lease_seconds * 1.5 + 1, 1)
        planned.append(Planned(round(at, 2), kind, params))
    at = 0.0
    kinds, weights = zip(*REPLICA_WEIGHTS.items(), strict=True)
    while True:
        at += rng.expovariate(1 / fault_every)
        if at > duration - 2:
            break
        kind = rng.choices(kinds, weights)[0]
        params = {}
        if kind == "sigstop":
            params["seconds"] = round(rng.uniform(1, 2 * lease_seconds), 1)
        if kind == "scale":
            params["replicas"] = rng.randint(MIN_REPLICAS, MAX_REPLICAS)
        planned.append(Planned(round(at, 2), kind, params))
    return sorted(planned)


class Driver:
    def __init__(self, injector: faults.Injector, planned: list[Planned], seed: int,
                 members: Callable[[], list[dict[str, Any]]]) -> None:
        self.injector = injector
        self.planned = planned
        self.rng = random.Random(seed + 1)  # targets: a stream of its own, apart from the plan
        self.members = members
        self.log: list[faults.Fault] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def run(self, t0: float) -> None:
        """Carry out the plan from wall-clock `t0`; returns when every fault has ended."""
        thaws: list[tuple[float, int, str, float, float]] = []  # (due, pid, replica, start, planned s)
        pending = list(self.planned)
        while pending or thaws:
            now = time.time()
            if thaws and thaws[0][0] <= now:
                _, pid, replica, start, seconds = heapq.heappop(thaws)
                self.injector.sigcont(pid)
                self._record(faults.Fault("sigstop", start, time.time(), [replica],
                                          {"pid": pid, "seconds": seconds}))
                continue
            if pending and t0 + pending[0].at <= now:
                item = pending.pop(0)
                try:
                    stop = self._inject(item)
                except Exception as error:  # a fault that could not be injected is logged, not fatal
                    self.errors.append(f"{item.kind} at {item.at}s: {type(error).__name__}: {error}")
                    log.warning("could not inject %s: %r", item.kind, error)
                    continue
                if stop is not None:
                    heapq.heappush(thaws, stop)
                continue
            due = [t0 + pending[0].at] if pending else []
            due += [thaws[0][0]] if thaws else []
            time.sleep(max(0.0, min(min(due) - time.time(), 0.5)))
        for thread in self._threads:
            thread.join()

    def heal(self) -> None:
        """Whatever is still broken, mended: frozen processes thawed, the proxy flowing."""
        self.injector.thaw_all()
        if self.injector.stack.proxy is not None:
            self.injector.stack.proxy.resume()

    def _inject(self, item: Planned) -> tuple[float, int, str, float, float] | None:
        injector = self.injector
        if item.kind in ONE_SHOTS:
            thread = threading.Thread(target=self._one_shot, args=(item,), name=f"chaos-{item.kind}")
            thread.start()
            self._threads.append(thread)
            return None
        if item.kind == "scale":
            self._record(injector.scale(item.params["replicas"], self.members()))
            return None
        targets = injector.running_targets()
        if not targets:
            self.errors.append(f"{item.kind} at {item.at}s: no running replica to hit")
            return None
        target = self.rng.choice(targets)
        if item.kind == "sigkill":
            self._record(injector.sigkill(target))
        elif item.kind == "delete_pod":
            self._record(injector.delete_pod(target))
        elif item.kind == "sigstop":
            start = injector.sigstop(target)
            log.info("SIGSTOP %s (pid %s) for %ss", target.replica, target.pid, item.params["seconds"])
            return (start + item.params["seconds"], target.pid, target.replica, start,
                    item.params["seconds"])
        return None

    def _one_shot(self, item: Planned) -> None:
        injector = self.injector
        try:
            if item.kind == "restart_postgres":
                fault = injector.restart_postgres(item.params["down_seconds"])
            elif item.kind == "restart_redis":
                fault = injector.restart_redis(item.params["down_seconds"])
            elif item.kind == "restart_operator":
                fault = injector.restart_operator()
            else:
                fault = injector.blackhole(item.params["seconds"])
        except Exception as error:  # logged with the run's figures, not fatal to the soak
            self.errors.append(f"{item.kind}: {type(error).__name__}: {error}")
            return
        self._record(fault)

    def _record(self, fault: faults.Fault) -> None:
        log.info("fault %s targets=%s %.1f-%.1f %s", fault.kind, fault.targets, fault.start,
                 fault.end, fault.detail)
        with self._lock:
            self.log.append(fault)
