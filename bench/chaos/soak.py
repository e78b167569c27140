"""One soak, start to finish: the AgentCluster, the warm-up, the driver, the drain, the facts.

The cluster: `replicas` replicas, `single` single-mode and `cluster` cluster-mode schedules,
each firing every second (six-field cron `* * * * * *`), every one calling the recorder's
`http` function, which works 0-3 s. The schedules allow overlap (a fire every second of work
that takes up to 3 s would otherwise be `skipped` by the overlap policy, by design, and the
soak counts fires, not the policy). `missedFireGraceSeconds` is longer than the whole soak:
a fire however late still runs, so the missed-fire policy never drops one, and every fire
due in the window must complete. `maxAttempts` is the API's most, so a fire taken over again
and again by faults is not failed as abandoned.

Window: from a moment after every schedule has run on every replica (the lanes are planned)
for `minutes`, with the driver injecting faults throughout. Then every fault is mended and
the soak waits until no fire of the window is left to run (nothing `available` or `running`
in PostgreSQL for a live replica, nothing in flight at the recorder), so a late second
execution would be seen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
from kubernetes.client.exceptions import ApiException

from agent_api import constants
from agent_api.db import queries
from bench.chaos import analysis, driver, faults
from bench.chaos.recorder import Recorder
from bench.chaos.stack import Stack
from bench.environment import BENCH_DIR

log = logging.getLogger("chaos")
SQL = queries.load(BENCH_DIR / "sql")
CLUSTER = "soak"


@dataclass(frozen=True)
class SoakConfig:
    minutes: float = 10.0
    seed: int = 1
    replicas: int = 5
    single: int = 20
    cluster: int = 5
    lease_seconds: int = 10
    fault_every: float = 6.0  # mean seconds between replica faults
    grace_seconds: int = 3600  # missedFireGraceSeconds: longer than any soak
    max_work_seconds: float = 3.0
    max_concurrent_runs: int = 64
    drain_timeout: float = 300.0

    @property
    def seconds(self) -> float:
        return self.minutes * 60


def spec(config: SoakConfig, recorder_url: str) -> dict[str, Any]:
    every_second = {"cron": "* * * * * *", "function": "work", "allowOverlap": True,
                    "missedFireGraceSeconds": config.grace_seconds}
    schedules = ([{"name": f"s{i:02d}", "mode": "single", **every_second} for i in range(config.single)]
                 + [{"name": f"c{i:02d}", "mode": "cluster", **every_second} for i in range(config.cluster)])
    return {
        "replicas": config.replicas,
        "functions": [{"name": "work", "http": {"url": recorder_url, "timeoutSeconds": 30}}],
        "schedules": schedules,
        "limits": {"maxConcurrentRuns": config.max_concurrent_runs,
                   "leaseSeconds": config.lease_seconds, "maxAttempts": 20,
                   "runTimeoutSeconds": 60},
    }


class StatusSampler:
    """The AgentCluster's status every second, with the wall-clock time it was read."""

    def __init__(self, stack: Stack, namespace: str) -> None:
        self.stack, self.namespace = stack, namespace
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-status", daemon=True)

    def start(self) -> StatusSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # the soak may fail before the sampler started
            self._thread.join(timeout=30)

    def latest_members(self) -> list[dict[str, Any]]:
        return self.samples[-1]["members"] if self.samples else []

    def read(self) -> dict[str, Any]:
        obj = self.stack.custom().get_namespaced_custom_object(
            constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL, CLUSTER)
        status = obj.get("status") or {}
        return {"t": time.time(), "replicas": obj["spec"]["replicas"],
                "members": [{k: m.get(k) for k in ("name", "ordinal", "phase", "ready")}
                            for m in status.get("members") or []],
                "archived": [a.get("name") for a in status.get("archived") or []]}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.read())
            except Exception as error:  # the API server is busy; the next second will do
                log.debug("status read failed: %r", error)
            self._stop.wait(1.0)


def run(stack: Stack, config: SoakConfig) -> dict[str, Any]:
    """Run one soak on a started stack; returns the raw facts and the counted figures."""
    recorder = Recorder(config.seed, config.max_work_seconds).start()
    namespace = f"chaos-{uuid.uuid4().hex[:8]}"
    core = stack.core()
    core.create_namespace(body={"metadata": {"name": namespace}})
    _wait(lambda: core.read_namespaced_service_account("default", namespace), 60, "the default ServiceAccount")
    sampler = StatusSampler(stack, namespace)
    injector = faults.Injector(stack, namespace, CLUSTER)
    chaos: driver.Driver | None = None
    try:
        stack.custom().create_namespaced_custom_object(
            constants.GROUP, constants.VERSION, namespace, constants.PLURAL,
            {"apiVersion": constants.API_VERSION, "kind": constants.KIND, "metadata": {"name": CLUSTER},
             "spec": spec(config, recorder.url)})
        sampler.start()
        began = time.time()
        _wait(lambda: _warmed_up(recorder, config), 300, "every schedule running on every replica")
        warm_up = time.time() - began
        t0 = float(math.ceil(time.time()) + 1)
        t1 = t0 + config.seconds
        planned = driver.plan(config.seed, config.seconds, config.lease_seconds, config.fault_every)
        log.info("window %s .. %s, %d faults planned", t0, t1, len(planned))
        chaos = driver.Driver(injector, planned, config.seed, sampler.latest_members)
        time.sleep(max(0.0, t0 - time.time()))
        chaos.run(t0)
        time.sleep(max(0.0, t1 - time.time()))
        chaos.heal()
        healed = time.time()
        drained = _drain(stack, namespace, recorder, config, t0, t1)
        facts = asyncio.run(_database_facts(stack.database_url, namespace, t0, t1))
        final = sampler.read()
    finally:
        injector.thaw_all()
        if stack.proxy is not None:
            stack.proxy.resume()
        sampler.stop()
        recorder.stop()
        _delete_namespace(stack, namespace)
    executions = [e.as_dict() for e in recorder.executions()]
    figures = analysis.count(
        executions=executions, faults=[f.as_dict() for f in chaos.log], runs=facts["runs"],
        lane_starts=facts["lane_starts"], members=facts["members"], samples=sampler.samples,
        final_members=final["members"], t0=t0, t1=t1, config=config)
    return {
        "parameters": asdict(config),
        "window": {"t0": t0, "t1": t1, "warm_up_seconds": round(warm_up, 1),
                   "drain_seconds": round(drained - healed, 1)},
        "figures": figures,
        "faults": [f.as_dict() for f in sorted(chaos.log, key=lambda f: f.start)],
        "fault_errors": chaos.errors,
        "planned_faults": [asdict(p) for p in planned],
        "fire_statuses": facts["fire_statuses"],
        "timeline": analysis.timeline(executions, t0, t1),
    }


def _warmed_up(recorder: Recorder, config: SoakConfig) -> bool:
    finished = [e for e in recorder.executions() if e.finished is not None]
    singles = {e.schedule for e in finished if e.schedule.startswith("s")}
    cluster_pairs = {(e.schedule, e.replica) for e in finished if e.schedule.startswith("c")}
    return len(singles) == config.single and len(cluster_pairs) == config.cluster * config.replicas


def _drain(stack: Stack, namespace: str, recorder: Recorder, config: SoakConfig,
           t0: float, t1: float) -> float:
    """Wait until nothing of the window is left to run; returns when that was seen."""
    deadline = time.time() + config.drain_timeout

    async def left() -> int:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return await conn.fetchval(SQL["ChaosFiresLeft"], namespace, CLUSTER, _ts(t0), _ts(t1))
        finally:
            await conn.close()

    while time.time() < deadline:
        try:
            pending = asyncio.run(left())
        except (OSError, asyncpg.PostgresError):
            pending = -1
        if pending == 0 and not _in_flight(recorder, t0, t1):
            # A lease's length more, so a late second execution would still be seen.
            time.sleep(config.lease_seconds)
            if not _in_flight(recorder, t0, t1):
                return time.time()
        time.sleep(1)
    log.warning("the drain did not finish within %ss", config.drain_timeout)
    return time.time()


def _in_flight(recorder: Recorder, t0: float, t1: float) -> list[Any]:
    """Executions of the window's fires still running at the recorder (the schedules go on
    firing after the window; those are not waited for)."""
    return [e for e in recorder.executions()
            if e.ended is None and t0 <= analysis.fire_second(e.fire_time) <= t1]


async def _database_facts(url: str, namespace: str, t0: float, t1: float) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        runs = await conn.fetch(SQL["ChaosRuns"], namespace, CLUSTER, _ts(t0), _ts(t1))
        statuses = await conn.fetch(SQL["ChaosFireStatuses"], namespace, CLUSTER, _ts(t0), _ts(t1))
        lanes = await conn.fetch(SQL["ChaosLaneStarts"], namespace, CLUSTER)
        members = await conn.fetch(SQL["ChaosMembers"], namespace, CLUSTER)
    finally:
        await conn.close()
    return {
        "runs": [{"schedule": r["schedule"], "fire_time": r["fire_time"].timestamp(),
                  "replica": r["replica"], "attempt": r["attempt"], "status": r["status"],
                  "started": r["started_at"].timestamp(),
                  "finished": r["finished_at"].timestamp() if r["finished_at"] else None}
                 for r in runs],
        "fire_statuses": [dict(r) for r in statuses],
        "lane_starts": [{"schedule": r["schedule"], "replica": r["replica"],
                         "first_fire": r["first_fire"].timestamp()} for r in lanes],
        "members": [{"name": r["replica"], "ordinal": r["ordinal"],
                     "registered_at": r["registered_at"].timestamp(),
                     "archived_at": r["archived_at"].timestamp() if r["archived_at"] else None}
                    for r in members],
    }


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _wait(check, timeout: float, what: str) -> Any:
    deadline = time.time() + timeout
    last: object = None
    while time.time() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as error:  # polled again until the deadline
            last = error
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s (last: {last!r})")


def _delete_namespace(stack: Stack, namespace: str) -> None:
    try:
        stack.core().delete_namespace(namespace, propagation_policy="Background")
    except ApiException as error:
        if error.status != 404:
            raise
