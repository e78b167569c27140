"""What the reconcile reads, fed by kopf's watches instead of a GET or LIST per pass.

kopf already streams AgentClusters and replica pods (it calls `handlers.Operator` on every
event); its indexes (`@kopf.index`) keep the latest body of every watched object in memory,
per resource kind one LIST at start-up and one WATCH from then on. `WatchCache` reads those
indexes: AgentClusters, replica pods (by their cluster label), PodDisruptionBudgets and
namespaces' labels. A settled cluster's reconcile then makes no read request at all; writes
go to the API server as before, each with its resourceVersion precondition where it had one.

Staleness, and why it is safe:
- A watch delivers an object milliseconds after it is written. A decision taken on an older
  copy either writes with that copy's resourceVersion (status, finalizers, budgets: the API
  server answers 409 and the pass runs again, `workqueue.CONFLICT_RETRY_SECONDS` later) or is
  idempotent against the real object (a pod created twice: AlreadyExists; deleted twice:
  NotFound).
- The operator's own writes are seen at once (read-your-writes): every object a create or
  patch returns is kept in `_written` until the watch delivers that version or a newer one
  (kopf's index functions end it; a read that finds the watch caught up does too). Without it,
  a pod event arriving before the cluster's status patch would let the next pass allocate the
  same scale-up again. Pod deletions are not kept: the pod vanishes from the watch, and a copy
  would outlive it.
- Absence is the dangerous reading (an AgentCluster missing from the cache is archived as
  gone), so the reconcile confirms it with a GET (`Kube.get_cluster(fresh=True)`): that costs
  one request per deleted cluster, never one per settled pass.
- Nothing reads the cache before it is synced: kopf runs no event handler until every index
  has finished its initial listing, and the `namespaces` event handler (there is always a
  namespace) sets `synced`; the resync loop, which starts every new leader's work, waits for
  it. Followers keep watching, so a new leader's cache is already warm.

resourceVersions are compared as integers: the API server documents them as opaque, but on
etcd they are its revisions (monotonic integers); one that is not an integer makes the
operator's own copy win until WRITTEN_TTL_SECONDS passes, which only costs a 409 at worst.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_api import constants

Obj = dict[str, Any]
Key = tuple[str, str]

# Longer than any watch delay; then the watch's copy is the truth again even if no newer
# version of the object was ever seen (e.g. it was deleted by someone else meanwhile).
WRITTEN_TTL_SECONDS = 30.0

# kopf index ids: kopf passes each index to handlers as a keyword argument of this name.
CLUSTERS = "agentcluster_index"
PODS = "replica_pod_index"
BUDGETS = "disruption_budget_index"
NAMESPACES = "namespace_index"


@dataclass
class _Written:
    """An object as the operator's own write returned it (None: deleted by the operator)."""
    version: int | None
    obj: Obj | None
    expires: float


def _plain(body: Mapping[str, Any], drop: tuple[str, ...] = ()) -> Obj:
    """A plain deep copy of kopf's body view (the reconcile may keep it across events),
    without `drop` and without metadata.managedFields (server-side apply's bookkeeping,
    often the largest part of an object, which nothing here reads)."""
    plain = copy.deepcopy({key: body[key] for key in body if key not in drop})
    if isinstance(plain.get("metadata"), dict):
        plain["metadata"].pop("managedFields", None)
    return plain


def _version(obj: Obj) -> int | None:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


class WatchCache:
    """Read-only views over kopf's indexes, plus the operator's own recent writes."""

    def __init__(self, written_ttl_seconds: float = WRITTEN_TTL_SECONDS) -> None:
        self._ttl = written_ttl_seconds
        self._indexes: dict[str, Mapping[Any, Iterable[Any]]] = {}
        self.synced = asyncio.Event()
        # (kind, namespace, name) -> the operator's own write, until the watch has it.
        self._written: dict[tuple[str, str, str], _Written] = {}

    # --- kopf's index functions (registered in handlers.Operator.register) -------------------------
    # kopf calls these on every event but DELETED (it drops the entry itself); each also ends
    # the operator's own copy of that object once the watch has delivered its version, so a
    # copy never outlives the object (a pod created, then deleted before any read).
    def index_cluster(self, namespace: str, name: str, body: Mapping[str, Any], **_: Any) -> dict[Key, Obj]:
        return {(namespace, name): self._delivered("AgentCluster", namespace, name, _plain(body))}

    def index_pod(self, namespace: str, name: str, labels: Mapping[str, str], body: Mapping[str, Any],
                  **_: Any) -> dict[Key, Obj]:
        # The reconcile reads a pod's metadata and status only; the spec (the environment,
        # probes, volumes) is most of a pod's size, times every replica.
        return {(namespace, labels[constants.LABEL_CLUSTER]):
                self._delivered("Pod", namespace, name, _plain(body, drop=("spec",)))}

    def index_budget(self, namespace: str, name: str, body: Mapping[str, Any], **_: Any) -> dict[Key, Obj]:
        return {(namespace, name): self._delivered("PodDisruptionBudget", namespace, name, _plain(body))}

    @staticmethod
    def index_namespace(name: str, labels: Mapping[str, str], **_: Any) -> dict[str, dict[str, str]]:
        return {name: dict(labels)}

    def _delivered(self, kind: str, namespace: str, name: str, obj: Obj) -> Obj:
        written = self._written.get((kind, namespace, name))
        seen = _version(obj)
        if (written is not None and written.obj is not None and seen is not None
                and written.version is not None and seen >= written.version):
            del self._written[(kind, namespace, name)]
        return obj

    def attach(self, indexes: Mapping[str, Mapping[Any, Iterable[Any]]]) -> None:
        """Keep kopf's live index objects (given to the startup handler as keyword arguments)."""
        self._indexes = {name: indexes[name] for name in (CLUSTERS, PODS, BUDGETS, NAMESPACES)}

    # --- reads ------------------------------------------------------------------------------
    def cluster(self, namespace: str, name: str) -> Obj | None:
        watched = self._one(CLUSTERS, (namespace, name))
        # The operator only writes AgentClusters it has read from the watch: one the watch no
        # longer has was deleted, whatever the operator last wrote to it.
        found = self._merged("AgentCluster", namespace, name, watched) if watched is not None else None
        return copy.deepcopy(found) if found is not None else None

    def clusters(self, namespace: str | None) -> list[Obj]:
        """Every AgentCluster in `namespace` (None: every watched namespace)."""
        keys = {key for key in self._indexes[CLUSTERS] if namespace is None or key[0] == namespace}
        keys |= {(ns, name) for kind, ns, name in self._written
                 if kind == "AgentCluster" and (namespace is None or ns == namespace)}
        found = (self.cluster(*key) for key in sorted(keys))
        return [obj for obj in found if obj is not None]

    def pods(self, namespace: str, cluster: str) -> list[Obj]:
        """The pods labelled as `cluster`'s replicas."""
        by_name = {pod["metadata"]["name"]: pod for pod in self._indexes[PODS].get((namespace, cluster), ())}
        names = set(by_name) | {name for kind, ns, name in self._written
                                if kind == "Pod" and ns == namespace}
        pods = []
        for name in sorted(names):
            pod = self._merged("Pod", namespace, name, by_name.get(name))
            if pod is not None and (pod["metadata"].get("labels") or {}).get(constants.LABEL_CLUSTER) == cluster:
                pods.append(pod)
        return pods

    def budget(self, namespace: str, name: str) -> Obj | None:
        return self._merged("PodDisruptionBudget", namespace, name, self._one(BUDGETS, (namespace, name)))

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        """None: the namespace is not (yet) known to the watch."""
        return self._one(NAMESPACES, namespace)

    # --- the operator's own writes ------------------------------------------------------------
    def wrote(self, obj: Obj) -> None:
        """Remember an object a write returned (create, patch, a graceful delete's answer)."""
        meta = obj.get("metadata") or {}
        if not obj.get("kind") or "name" not in meta:
            return  # a Status, not an object
        key = (obj["kind"], meta.get("namespace", ""), meta["name"])
        self._written[key] = _Written(_version(obj), obj, time.monotonic() + self._ttl)

    def deleted(self, kind: str, namespace: str, name: str, version: str | None) -> None:
        """Remember that the operator deleted the object it read at `version`."""
        try:
            number = int(version) if version is not None else None
        except ValueError:
            number = None
        self._written[(kind, namespace, name)] = _Written(number, None, time.monotonic() + self._ttl)

    # --- internals ----------------------------------------------------------------------------
    def _one(self, index: str, key: Any) -> Any:
        for value in self._indexes[index].get(key, ()):
            return value
        return None

    def _merged(self, kind: str, namespace: str, name: str, watched: Obj | None) -> Obj | None:
        """The watch's copy, unless the operator's own write is newer than it."""
        key = (kind, namespace, name)
        written = self._written.get(key)
        if written is None:
            return watched
        if time.monotonic() > written.expires:
            del self._written[key]
            return watched
        seen = _version(watched) if watched is not None else None
        if written.obj is None:  # deleted by the operator
            if watched is None or (seen is not None and written.version is not None and seen > written.version):
                del self._written[key]  # gone from the watch too, or recreated since
                return watched
            return None
        if seen is not None and written.version is not None and seen >= written.version:
            del self._written[key]
            return watched
        return written.obj
