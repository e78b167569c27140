"""Leader election on a `coordination.k8s.io` Lease, the way client-go's leaderelection does it.

Every operator replica serves the admission webhook; only the one holding the Lease
reconciles. A candidate reads the Lease and takes it when it is free (no holder: released on a
graceful shutdown) or when its record has not changed for `leaseDuration` as measured on the
candidate's own monotonic clock (never by comparing `renewTime` with our wall clock: clocks of
two nodes disagree). Taking and renewing are a replace carrying the `resourceVersion` that was
read, so of two candidates racing for the same record the API server lets exactly one through
(the other gets 409 Conflict).

Fencing: a leader counts its term from the *start* of its last successful renewal and holds it
for `renewDeadline` (< `leaseDuration`), so it stops believing it leads before any other
candidate can consider the Lease expired. `FencedApiClient` refuses every write the reconcile
attempts outside that window, even when the event loop has been frozen (SIGSTOP, a long GC
pause) and the elector has not yet run to notice: the check is the monotonic clock, not a flag
someone must remember to clear.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

LEASE_THREADS = 3

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LostLeadership(Exception):
    """A write was attempted by a replica that does not (or no longer) hold the Lease."""


def identity() -> str:
    """The holder identity: the pod's name (downward API `POD_NAME`), else hostname and pid
    (unique among processes of one machine, e.g. several operators of the devcluster)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def field_manager(holder: str) -> str:
    """The managedFields manager of the reconcile's writes by `holder`."""
    return f"agentclusters-operator@{holder}"[:128]


def lease_namespace(configured: str) -> str:
    """The configured namespace, else the operator's own (`POD_NAMESPACE`, the service
    account's), else `default` (an operator run outside a cluster)."""
    if configured:
        return configured
    if namespace := os.environ.get("POD_NAMESPACE"):
        return namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def micro_time(moment: dt.datetime) -> str:
    """A `MicroTime` as the API server writes it (it insists on the six fraction digits)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Timing:
    lease_duration: float
    """How long a candidate waits after the record last changed before taking it over."""
    renew_deadline: float
    """How long a leader keeps leading after the start of its last successful renewal."""
    retry_period: float
    """Pause between two attempts to acquire or renew."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                f"leader election needs retryPeriod < renewDeadline < leaseDuration, got "
                f"{self.retry_period}s, {self.renew_deadline}s, {self.lease_duration}s: a leader must "
                "give up before any other replica may consider its Lease expired")


class LeaseElector:
    """Campaigns for one Lease forever; calls `on_started` / `on_stopped` as leadership changes."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str, holder: str,
                 timing: Timing) -> None:
        self.coordination = client.CoordinationV1Api(api_client)
        self.namespace, self.name, self.holder, self.timing = namespace, name, holder, timing
        self._valid_until = 0.0  # monotonic; read from worker threads by `holds_lease`
        # The Lease's own threads: in asyncio's default pool a renewal would queue behind the
        # reconciles' API calls (pod creates run several at a time) and miss its deadline on a
        # busy machine. Several, so one hung request cannot block the next attempts.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=LEASE_THREADS,
                                                               thread_name_prefix="lease")
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._resource_version: str | None = None
        self._leading = False
        self._waiting_for: str | None = None

    def holds_lease(self) -> bool:
        """True while the last successful renewal is younger than `renewDeadline`."""
        return self._leading and time.monotonic() < self._valid_until

    async def run(self, on_started: Callable[[], Awaitable[None]],
                  on_stopped: Callable[[], Awaitable[None]]) -> None:
        log.info("leader election: candidate %s for Lease %s/%s (duration %ss, renew deadline %ss, "
                 "retry %ss)", self.holder, self.namespace, self.name, self.timing.lease_duration,
                 self.timing.renew_deadline, self.timing.retry_period)
        while True:
            started = time.monotonic()
            acquired = await self._attempt(started)
            if acquired:
                self._valid_until = started + self.timing.renew_deadline
                if not self._leading:
                    self._leading = True
                    self._waiting_for = None
                    log.info("leader election: %s acquired Lease %s/%s; reconciling",
                             self.holder, self.namespace, self.name)
                    await on_started()
            elif self._leading and time.monotonic() >= self._valid_until:
                self._leading = False
                log.warning("leader election: %s could not renew Lease %s/%s within %ss; "
                            "stopped reconciling", self.holder, self.namespace, self.name,
                            self.timing.renew_deadline)
                await on_stopped()
            await asyncio.sleep(self._next_pause())

    def _next_pause(self) -> float:
        pause = self.timing.retry_period
        if self._leading:  # wake up at the deadline at the latest, to stop in time
            pause = min(pause, max(0.0, self._valid_until - time.monotonic()))
        return pause

    async def _attempt(self, started: float) -> bool:
        """One try to acquire or renew; False on any failure (logged), never raises."""
        timeout = self.timing.renew_deadline
        if self._leading:  # a renewal that would end after the deadline is worth nothing
            timeout = max(0.05, self._valid_until - started)
        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(self._executor, self._try_acquire_or_renew), timeout)
        except TimeoutError:
            log.warning("leader election: Lease %s/%s: no answer within %.1fs", self.namespace,
                        self.name, timeout)
        except ApiException as error:
            if error.status == 409:  # another candidate wrote the record between our read and write
                log.info("leader election: Lease %s/%s changed under us; retrying", self.namespace, self.name)
            else:
                log.warning("leader election: Lease %s/%s: %s %s", self.namespace, self.name,
                            error.status, error.reason)
        except Exception as error:  # the API server unreachable: keep campaigning
            log.warning("leader election: Lease %s/%s: %s", self.namespace, self.name, error)
        return False

    def _try_acquire_or_renew(self) -> bool:
        """Runs in a worker thread (the client is synchronous). Raises ApiException 409 when
        another candidate changed the record since we read it."""
        now = dt.datetime.now(dt.UTC)
        try:
            lease = self._read()
        except ApiException as error:
            if error.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, acquired=now, transitions=0)}
            created = self._write(self.coordination.create_namespaced_lease, self.namespace, body)
            self._resource_version = created["metadata"]["resourceVersion"]
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), lease["metadata"]["resourceVersion"])
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        if holder and holder != self.holder:
            self._valid_until = 0.0  # someone else holds it: whatever we believed, we do not lead
            expires = self._observed_at + float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            if time.monotonic() < expires:
                if holder != self._waiting_for:
                    self._waiting_for = holder
                    log.info("leader election: waiting; Lease %s/%s is held by %s", self.namespace,
                             self.name, holder)
                return False
            log.info("leader election: Lease %s/%s of %s expired; taking it over", self.namespace,
                     self.name, holder)
        ours = holder == self.holder
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        acquired = spec.get("acquireTime") if ours else micro_time(now)
        # The resourceVersion read above makes this a compare-and-swap: if anyone wrote the
        # Lease in between, the API server answers 409 and nobody's belief changes.
        lease["spec"] = self._spec(now, acquired=acquired, transitions=transitions)
        replaced = self._write(self.coordination.replace_namespaced_lease, self.name, self.namespace, lease)
        self._resource_version = replaced["metadata"]["resourceVersion"]
        return True

    def _spec(self, now: dt.datetime, *, acquired: dt.datetime | str | None, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": math.ceil(self.timing.lease_duration),
            "acquireTime": micro_time(acquired) if isinstance(acquired, dt.datetime) else acquired,
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }

    def _read(self) -> dict[str, Any]:
        response = self.coordination.read_namespaced_lease(
            self.name, self.namespace, _preload_content=False,
            _request_timeout=self.timing.renew_deadline)
        return json.loads(response.data)

    def _write(self, method: Callable[..., Any], *args: Any) -> dict[str, Any]:
        response = method(*args, _preload_content=False, _request_timeout=self.timing.renew_deadline)
        return json.loads(response.data)

    async def release(self) -> None:
        """Give the Lease up (graceful shutdown) so another replica takes over at once instead
        of after `leaseDuration`. Call only once reconciling has stopped."""
        if not self._leading:
            return
        self._leading = False
        try:
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self._executor, self._release),
                                   self.timing.renew_deadline)
            log.info("leader election: %s released Lease %s/%s", self.holder, self.namespace, self.name)
        except Exception as error:  # the others take over after leaseDuration instead
            log.warning("leader election: could not release Lease %s/%s: %s", self.namespace, self.name, error)

    def _release(self) -> None:
        lease = self._read()
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.holder:
            return  # someone else holds it already: nothing of ours to give up
        # client-go's release: no holder and a 1s duration. Compare-and-swap on what we read.
        lease["spec"] = {**spec, "holderIdentity": None, "leaseDurationSeconds": 1,
                         "renewTime": micro_time(dt.datetime.now(dt.UTC))}
        self._write(self.coordination.replace_namespaced_lease, self.name, self.namespace, lease)


class FencedApiClient(client.ApiClient):
    """An API client whose writes go through only while `fence()` says this replica leads.

    The reconcile uses it; admission (every replica, leader or not) uses a plain client. The
    check runs in the worker thread immediately before the request is sent. The User-Agent
    names the holder, so the API server's managedFields (and audit log) show which replica
    made each write."""

    def __init__(self, configuration: client.Configuration, fence: Callable[[], bool], holder: str) -> None:
        super().__init__(configuration)
        self._fence = fence
        # The API server takes a write's field manager from the User-Agent up to the first "/".
        self.user_agent = f"{field_manager(holder)}/python"

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in READ_ONLY_METHODS and not self._fence():
            raise LostLeadership(f"not the leader: refusing {method} {url}")
        return super().call_api(method, url, *args, **kwargs)
