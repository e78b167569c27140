"""An HTTP endpoint for `http` functions that records every execution, outside the runtime.

The fault tests judge the runtime by what a function's target sees, not by the runtime's own
bookkeeping (which is what a fault may corrupt). An `http` function sends the run's fields
(`idempotency_key`, `replica`, `attempt`, `payload`, `state`, ... see
agent_runtime/functions.py) with the function's method and headers; each request is one
execution, and the recorder keeps what it saw of it (method, headers, body). The recorder
notes when it started, sleeps `payload.seconds` (or a per-replica override), and answers 200
(or the next scripted status). A client that hangs up before the answer (a replica that fenced
itself and aborted the request) makes the execution `aborted` at that instant: the work was
cut short and never reported done.

Times are `time.monotonic()` of this process. It runs in a thread with its own event loop,
so a test that blocks for a moment (pg_ctl, a subprocess wait) does not delay an answer or
the moment a hang-up is noticed.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from dataclasses import dataclass, field, replace

from aiohttp import web

from devcluster import ports
from tests.support.threaded_endpoint import ThreadedEndpoint


@dataclass(frozen=True)
class Execution:
    key: str
    replica: str
    attempt: int
    started: float
    finished: float | None = None  # the answer was sent
    aborted: float | None = None  # the client hung up first
    status: int | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: dict = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.finished is not None

    @property
    def ended(self) -> float:
        """When it stopped running; still running counts as running forever."""
        if self.finished is not None:
            return self.finished
        if self.aborted is not None:
            return self.aborted
        return math.inf

    def overlaps(self, other: Execution) -> bool:
        return self.started < other.ended and other.started < self.ended


@dataclass
class Recorder:
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    seconds_by_replica: dict[str, float] = field(default_factory=dict)
    port: int = field(default_factory=ports.free_port)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: list[Execution] = []
        self._server = ThreadedEndpoint("recorder", "/execute", self._execute, self.port)

    @property
    def url(self) -> str:
        return self._server.url

    def function(self, name: str, **http: object) -> dict:
        """A spec function that calls this recorder (`timeoutSeconds`, `retries`, ...)."""
        return {"name": name, "http": {"url": self.url, **http}}

    def start(self) -> Recorder:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def script(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (then 200 again)."""
        with self._lock:
            self.statuses.extend(statuses)

    # -- what was seen ----------------------------------------------------------------------

    def executions(self, key: str | None = None) -> list[Execution]:
        with self._lock:
            return [e for e in self._executions if key is None or e.key == key]

    def idempotency_keys(self) -> set[str]:
        return {e.key for e in self.executions()}

    def running(self, key: str | None = None) -> list[Execution]:
        return [e for e in self.executions(key) if e.ended == math.inf]

    def completions(self, key: str | None = None) -> list[Execution]:
        return [e for e in self.executions(key) if e.completed]

    def overlapping(self) -> list[tuple[Execution, Execution]]:
        """Pairs of executions of one key that ran at the same time."""
        pairs = []
        for a, b in itertools.combinations(self.executions(), 2):
            if a.key == b.key and a.overlaps(b):
                pairs.append((a, b))
        return pairs

    def describe(self) -> str:
        """Every execution relative to the first start, for assertion messages."""
        executions = self.executions()
        if not executions:
            return "(no executions)"
        origin = min(e.started for e in executions)

        def at(t: float | None) -> str:
            return "-" if t is None else f"{t - origin:.2f}s"

        return "\n".join(f"{e.key} replica={e.replica} attempt={e.attempt} started={at(e.started)} "
                         f"finished={at(e.finished)} aborted={at(e.aborted)} status={e.status}"
                         for e in executions)

    # -- serving, on the recorder's loop ----------------------------------------------------

    async def _execute(self, request: web.Request) -> web.Response:
        body = await request.json()
        execution = Execution(key=body["idempotency_key"], replica=body["replica"],
                              attempt=body["attempt"], started=time.monotonic(),
                              method=request.method, headers=dict(request.headers), body=body)
        index = self._record(execution)
        payload = body.get("payload") or {}
        seconds = self.seconds_by_replica.get(execution.replica, payload.get("seconds", 0))
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self._update(index, aborted=time.monotonic())
            raise
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
        self._update(index, finished=time.monotonic(), status=status)
        return web.json_response({"slept": seconds, "replica": execution.replica},
                                 status=status)

    def _record(self, execution: Execution) -> int:
        with self._lock:
            self._executions.append(execution)
            return len(self._executions) - 1

    def _update(self, index: int, **changes: object) -> None:
        with self._lock:
            self._executions[index] = replace(self._executions[index], **changes)
