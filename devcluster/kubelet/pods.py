"""The pods bound to this node: list + watch (`spec.nodeName=<node>`), one worker per pod uid.

The watch is re-established every `RESYNC_SECONDS` with a fresh list (a periodic resync that
also repairs anything a dropped watch missed); a 410 Gone (expired resourceVersion) or any
connection error leads to a relist as well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from devcluster.kubelet.pod_worker import PodWorker, WorkerContext

log = logging.getLogger(__name__)

RESYNC_SECONDS = 60
SHUTDOWN_GRACE = 3.0
_COMPLETED_MEMORY = 10_000


class PodManager:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.workers: dict[str, PodWorker] = {}
        self._completed: OrderedDict[str, None] = OrderedDict()  # uids whose pods are gone
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pod-manager", daemon=True)
        self._selector = f"spec.nodeName={ctx.node_name}"

    def start(self) -> PodManager:
        self.thread.start()
        return self

    # --- list + watch -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._relist()
                self._watch(version)
            except Exception as exc:  # the API may be restarting: relist soon
                if self._stop.is_set():
                    return
                log.warning("pod watch interrupted: %s", exc)
                self._stop.wait(1.0)

    def _relist(self) -> str:
        listing = self.ctx.client.get("/api/v1/pods", fieldSelector=self._selector)
        seen = set()
        for pod in listing.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self._dispatch(pod, from_list=True)
        with self._lock:
            missing = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in missing:
            log.info("pod %s (uid %s) no longer exists", worker.label, worker.uid)
            worker.vanish()
        self.synced.set()
        return listing["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> None:
        for event in self.ctx.client.watch(
            "/api/v1/pods", timeout_seconds=RESYNC_SECONDS, fieldSelector=self._selector,
            resourceVersion=version,
        ):
            if self._stop.is_set():
                return
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") != 410:
                    log.warning("pod watch error: %s", obj.get("message"))
                return  # relist
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                self._gone(obj)
            elif kind in ("ADDED", "MODIFIED"):
                self._dispatch(obj)

    # --- workers ----------------------------------------------------------------------------
    def _dispatch(self, pod: dict, from_list: bool = False) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            self._prune()
            if uid in self._completed:
                if not from_list:
                    return  # a late event for a pod this kubelet already removed
                del self._completed[uid]  # still listed: its removal did not stick; redo it
            worker = self.workers.get(uid)
            if worker is None:
                if self._stop.is_set():
                    return
                worker = PodWorker(self.ctx, pod)
                self.workers[uid] = worker
                log.info("new pod %s (uid %s)", worker.label, uid)
                worker.start()
                return
        worker.update(pod)

    def _gone(self, pod: dict) -> None:
        with self._lock:
            worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.vanish()

    def _prune(self) -> None:
        for uid in [uid for uid, w in self.workers.items() if w.finished.is_set()]:
            del self.workers[uid]
            self._completed[uid] = None
        while len(self._completed) > _COMPLETED_MEMORY:
            self._completed.popitem(last=False)

    # --- shutdown ---------------------------------------------------------------------------
    def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop watching and stop every pod's processes (SIGTERM, SIGKILL after `grace`)."""
        self._stop.set()
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown(grace)
        deadline = time.monotonic() + grace + 3
        for worker in workers:
            worker.finished.wait(max(deadline - time.monotonic(), 0.1))
        killed = self.ctx.registry.kill_leftovers()
        if killed:
            log.warning("killed leftover process groups %s", killed)

    def pod_count(self) -> int:
        with self._lock:
            return sum(1 for w in self.workers.values() if not w.finished.is_set())

