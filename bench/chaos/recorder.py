"""The soak's outside witness: the endpoint every `http` function of the soak calls.

The verdict on the runtime must not come from the runtime's own tables (a fault may corrupt
them), so every execution is seen here: the request's arrival is its *start*, the answer
sent its *finish*, a client that hangs up first (a replica killed, or one that fenced itself
and aborted the request) makes it *aborted*. The body names the fire (`idempotency_key` =
`<schedule>:<fire_time>`, `schedule`, `fire_time`), the `replica` and the `attempt`; the
runtime sends no fencing token to functions (agent_runtime/functions.py), so none is kept.

How long the "work" takes (0 to `max_seconds`) is a pure function of the seed, the key and
the replica, so a re-execution of a fire by the same replica works as long as the first did,
and a run is reproducible from the seed.

Times are wall-clock (`time.time()`): fire times are the database's wall clock, and the
database runs on this machine. The server runs in a thread with its own event loop, so the
driver's blocking calls (pg_ctl, kubectl) never delay an answer or the notice of a hang-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from dataclasses import dataclass, replace

from aiohttp import web

from tests.support.threaded_endpoint import ThreadedEndpoint


@dataclass(frozen=True)
class Execution:
    key: str  # the idempotency key: "<schedule>:<fire_time ISO>"
    schedule: str
    fire_time: str  # ISO 8601, as the runtime sent it
    replica: str
    attempt: int
    started: float  # wall clock
    seconds: float  # how long the work was meant to take
    finished: float | None = None  # the answer was sent
    aborted: float | None = None  # the client hung up first

    @property
    def ended(self) -> float | None:
        return self.finished if self.finished is not None else self.aborted

    def as_dict(self) -> dict[str, object]:
        return {"key": self.key, "schedule": self.schedule, "fire_time": self.fire_time,
                "replica": self.replica, "attempt": self.attempt, "started": self.started,
                "seconds": self.seconds, "finished": self.finished, "aborted": self.aborted}


def work_seconds(seed: int, key: str, replica: str, max_seconds: float) -> float:
    """How long one execution works: uniform in [0, max_seconds], fixed by (seed, key, replica)."""
    digest = hashlib.sha256(f"{seed}|{key}|{replica}".encode()).digest()
    return round(int.from_bytes(digest[:8], "big") / 2**64 * max_seconds, 3)


class Recorder:
    def __init__(self, seed: int, max_seconds: float = 3.0) -> None:
        self.seed = seed
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._executions: list[Execution] = []
        # A deep backlog: 25 schedules a second on up to 7 replicas arrive in bursts.
        self._server = ThreadedEndpoint("chaos-recorder", "/execute", self._execute, backlog=1024)
        self.port = self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> Recorder:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def executions(self) -> list[Execution]:
        with self._lock:
            return list(self._executions)

    def in_flight(self) -> int:
        return sum(1 for e in self.executions() if e.ended is None)

    async def _execute(self, request: web.Request) -> web.Response:
        started = time.time()
        body = await request.json()
        key = body["idempotency_key"]
        execution = Execution(key=key, schedule=body.get("schedule") or "",
                              fire_time=body.get("fire_time") or "", replica=body["replica"],
                              attempt=int(body.get("attempt") or 0), started=started,
                              seconds=work_seconds(self.seed, key, body["replica"], self.max_seconds))
        with self._lock:
            self._executions.append(execution)
            index = len(self._executions) - 1
        try:
            await asyncio.sleep(execution.seconds)
        except asyncio.CancelledError:
            self._update(index, aborted=time.time())
            raise
        self._update(index, finished=time.time())
        return web.json_response({"worked": execution.seconds})

    def _update(self, index: int, **changes: object) -> None:
        with self._lock:
            self._executions[index] = replace(self._executions[index], **changes)
