"""Watch-fed caches of Kubernetes objects, as a controller's informer keeps them: LIST once, then
WATCH from the list's resourceVersion, applying every event to an in-memory store, so the
gateway's hot path (a chat, a webhook delivery) reads AgentClusters and replica pods without an
API-server request.

Why a thread running the official (synchronous) client rather than an aiohttp watch: the
thread reuses the gateway's `ApiClient` as it is configured from the kubeconfig or the pod's
ServiceAccount (client certificates, exec plugins, token files that rotate), where an aiohttp
watch would re-implement that authentication. The thread spends its life blocked in a socket
read, which holds no GIL, and hands each event to the event loop (`call_soon_threadsafe`), so
the store is only ever changed on the loop's thread and readers need no lock.

Keeping the stream honest, as client-go's reflector does:
- the watch resumes from the last resourceVersion it saw (every event's, and the bookmarks the
  API server sends when asked, `allowWatchBookmarks`), so a watch that ends (the server's
  `timeoutSeconds`, a dropped connection) misses nothing;
- a resourceVersion too old to resume from (410 Gone, as a status or as an ERROR event) means
  events were lost: LIST again and replace the store;
- any other failure backs off exponentially (BACKOFF_SECONDS up to BACKOFF_MAX_SECONDS, with
  jitter) and resumes; while it lasts, the store keeps serving what it had (staleness grows
  with the outage; a store that never synced answers nothing, see `Informer.wait_synced`).

Read-your-writes: the gateway's own writes put the object the API server answered into the
store at once (`Informer.apply`), newer resourceVersions winning, so a tool that patches then
reads sees its patch even before the watch delivers it. resourceVersions are compared as
integers (etcd's revisions); Kubernetes calls them opaque, so a version that is not a number
is taken as newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str]

# The API server ends each watch after this long (a random part added, as client-go does, so
# many gateways do not all re-watch at once); the watch then resumes from its resourceVersion.
WATCH_SECONDS = 300
# A watch that stays silent this long is taken for a dead connection (one that vanished
# without a reset, e.g. behind a NAT that forgot it) and opened again from its resourceVersion:
# the API server sends a bookmark about once a minute to a watch that asked for them, so a
# healthy one is rarely silent this long, and if it is, re-watching costs one request.
READ_TIMEOUT_SECONDS = 120
CONNECT_TIMEOUT_SECONDS = 10
BACKOFF_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


class Gone(Exception):
    """The resourceVersion to resume from is too old: events were lost, LIST again."""


@dataclass(frozen=True)
class Source:
    """How to LIST and WATCH one resource in one scope: `call(**kwargs)` is a method of the
    official client (e.g. `CustomObjectsApi.list_cluster_custom_object` bound to the group,
    version and plural), called with `_preload_content=False`."""

    what: str
    """For logs and readiness, e.g. "agentclusters in all namespaces"."""
    call: Callable[..., Any]
    label_selector: str | None = None


def newer(candidate: str | None, current: str | None) -> bool:
    """Whether resourceVersion `candidate` is newer than `current` (both etcd revisions)."""
    if current is None or candidate is None:
        return True
    try:
        return int(candidate) > int(current)
    except ValueError:
        return True


class Informer(Generic[T]):
    """One resource in one scope, listed and watched into `store` (key: namespace and name;
    value: `project(object)`, what the gateway needs of it)."""

    def __init__(self, source: Source, project: Callable[[dict[str, Any]], T]) -> None:
        self.source = source
        self._project = project
        self._items: dict[Key, tuple[str | None, T]] = {}
        self._synced = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self._waiters: dict[Key, list[tuple[str, asyncio.Future[None]]]] = {}
        self.last_error: str | None = None
        """Why the last LIST or WATCH failed; None once it succeeded again."""
        self.resource_version: str | None = None

    # --- reading (on the event loop) -----------------------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, within: float) -> bool:
        if not self._synced.is_set():
            try:
                await asyncio.wait_for(self._synced.wait(), within)
            except TimeoutError:
                return False
        return True

    def get(self, namespace: str, name: str) -> T | None:
        found = self._items.get((namespace, name))
        return None if found is None else found[1]

    def in_namespace(self, namespace: str) -> list[T]:
        return [value for (ns, _), (_, value) in self._items.items() if ns == namespace]

    # --- writing (on the event loop) -----------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> None:
        """Store `obj` (an ADDED or MODIFIED event, or the answer to the gateway's own write)
        unless the store already holds a newer version of it."""
        meta = obj.get("metadata") or {}
        key, version = (meta.get("namespace", ""), meta["name"]), meta.get("resourceVersion")
        held = self._items.get(key)
        if held is None or newer(version, held[0]):
            self._items[key] = (version, self._project(obj))
        self._release(key, version)

    def forget(self, obj: dict[str, Any]) -> None:
        """Drop `obj` (a DELETED event, or the gateway's own delete) unless the store holds a
        version newer than the deleted one (a re-creation under the same name)."""
        meta = obj.get("metadata") or {}
        key, version = (meta.get("namespace", ""), meta["name"]), meta.get("resourceVersion")
        held = self._items.get(key)
        if held is not None and (version is None or not newer(held[0], version)):
            del self._items[key]
        self._release(key, version)

    async def wait_for(self, namespace: str, name: str, version: str, within: float) -> bool:
        """Wait until the store holds `namespace/name` at `version` or newer (after a write
        whose answer is not the object itself, e.g. the scale subresource's)."""
        key = (namespace, name)
        held = self._items.get(key)
        if held is not None and not newer(version, held[0]):
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append((version, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), within)
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._waiters.get(key, [])
            if (version, future) in waiting:
                waiting.remove((version, future))
            if not waiting:
                self._waiters.pop(key, None)

    def _release(self, key: Key, version: str | None) -> None:
        for wanted, future in self._waiters.get(key, []):
            if not future.done() and (version is None or not newer(wanted, version)):
                future.set_result(None)

    def _replace(self, items: list[dict[str, Any]], version: str) -> None:
        """A fresh LIST: it replaces the store, except objects the gateway wrote after it."""
        fresh: dict[Key, tuple[str | None, T]] = {}
        for obj in items:
            meta = obj["metadata"]
            fresh[(meta.get("namespace", ""), meta["name"])] = (meta.get("resourceVersion"), self._project(obj))
        for key, held in self._items.items():
            if key not in fresh and held[0] is not None and newer(held[0], version):
                fresh[key] = held
        self._items = fresh
        self.resource_version = version
        self.last_error = None
        for key, (held_version, _) in fresh.items():
            self._release(key, held_version)
        self._synced.set()

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED"):
            self.apply(obj)
        elif kind == "DELETED":
            self.forget(obj)
        if version is not None:
            self.resource_version = version
        self.last_error = None

    def _failed(self, error: str) -> None:
        self.last_error = error

    # --- the watching thread -------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"watch {self.source.what}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the watch: the thread is a daemon, and closing its response ends its read."""
        self._stopping.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown() if hasattr(response, "shutdown") else response.close()
            except Exception:  # a response already closed, or closing under the reader's feet
                log.debug("closing the watch of %s", self.source.what, exc_info=True)

    def _post(self, callback: Callable[..., None], *args: Any) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed() or self._stopping.is_set():
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed between the check and the call
            return False
        return True

    def _run(self) -> None:
        failures = 0
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    items, version = self._list()
                    if not self._post(self._replace, items, version):
                        return
                for kind, obj in self._watch(version):
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK" and not self._post(self._event, kind, obj):
                        return
                    failures = 0
                failures = 0
            except Gone:
                log.info("the watch of %s fell too far behind (410 Gone); listing again", self.source.what)
                version = None
            except urllib3.exceptions.ReadTimeoutError:
                if version is not None:  # a silent watch: open it again from where it was
                    log.debug("the watch of %s was silent for %ss; watching again", self.source.what,
                              READ_TIMEOUT_SECONDS)
                    continue
                failures += 1
                self._post(self._failed, f"listing took more than {READ_TIMEOUT_SECONDS}s")
                self._stopping.wait(min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** (failures - 1)))
            except Exception as exc:
                if self._stopping.is_set():
                    return
                failures += 1
                error = describe(exc)
                delay = min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                log.warning("watching %s failed (%s); retrying in %.1fs, serving what is cached meanwhile",
                            self.source.what, error, delay)
                self._post(self._failed, error)
                if isinstance(exc, ApiException) and exc.status == 410:
                    version = None
                self._stopping.wait(delay)

    def _list(self) -> tuple[list[dict[str, Any]], str]:
        response = self.source.call(label_selector=self.source.label_selector or "", _preload_content=False,
                                    _request_timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS))
        body = json.loads(response.data)
        return body.get("items") or [], body["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        response = self.source.call(
            label_selector=self.source.label_selector or "", watch=True, resource_version=version,
            allow_watch_bookmarks=True, timeout_seconds=int(WATCH_SECONDS * random.uniform(1, 1.2)),
            _preload_content=False, _request_timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS))
        self._response = response
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise RuntimeError(f"the watch answered an error: {obj.get('message') or obj}")
                yield kind, obj
        finally:
            self._response = None
            response.release_conn()


def describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        with contextlib.suppress(ValueError, AttributeError):
            reason = json.loads(exc.body or "{}").get("message") or reason
        return f"HTTP {exc.status}: {reason}"
    return str(exc) or type(exc).__name__


class Informers:
    """Several informers started and stopped together, with one readiness answer."""

    def __init__(self, informers: list[Informer[Any]]) -> None:
        self.all = informers

    def start(self) -> None:
        for informer in self.all:
            informer.start()

    def stop(self) -> None:
        for informer in self.all:
            informer.stop()

    def not_synced(self) -> list[str]:
        """What has not synced yet, with the last error of each."""
        return [f"{i.source.what}: {i.last_error or 'listing'}" for i in self.all if not i.synced]


class Scoped(Generic[T]):
    """One resource's informers over the namespaces the gateway serves: one informer for the
    whole cluster (`namespaces` empty: the gateway's ClusterRoleBinding), or one per namespace
    (the chart's `operator.watchNamespaces`, where the gateway's rights are RoleBindings)."""

    def __init__(self, make: Callable[[str | None], Informer[T]], namespaces: tuple[str, ...]) -> None:
        self._everywhere = make(None) if not namespaces else None
        self._each = {ns: make(ns) for ns in namespaces}

    @property
    def informers(self) -> list[Informer[T]]:
        return [self._everywhere] if self._everywhere is not None else list(self._each.values())

    def informer(self, namespace: str) -> Informer[T] | None:
        """The informer that sees `namespace`, or None: a namespace the gateway does not watch
        is read from the API server as before (where its RBAC decides)."""
        return self._everywhere if self._everywhere is not None else self._each.get(namespace)
