"""The gateway's Kubernetes calls: AgentClusters, their scale subresource, replica pods (to
check the addresses in Redis), the replica token Secret (over stdio only), and the
TokenReview / SubjectAccessReview that make Kubernetes RBAC the permission model.

Every change is a JSON merge patch carrying the `metadata.resourceVersion` it was computed
from, so the API server answers 409 if anyone (kubectl, GitOps, another MCP call) changed the
object in between; `update_spec` then re-reads and recomputes. The official client is
synchronous; its calls run in worker threads.

Reads of AgentClusters come from a watch-fed cache (agent_gateway/informer.py) when the gateway
serves over HTTP: no API-server request per chat or webhook delivery. The answer to every write
goes into the cache at once, so the next read sees at least what was written; a conflict
re-reads from the API server itself (the cache may be the stale party). A namespace outside the
watched ones, and the stdio gateway (one person's kubeconfig, which may not list cluster-wide),
read from the API server as before.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from agent_api import constants, replica_auth
from agent_gateway import errors, informer

log = logging.getLogger(__name__)

G, V, P = constants.GROUP, constants.VERSION, constants.PLURAL
CONFLICT_RETRIES = 8
# How long a request waits for a cache that has not synced yet (a gateway just started, or
# one whose LIST keeps failing) before it is told to try again.
SYNC_WAIT_SECONDS = 10.0
# How long scale_agent waits for the watch to deliver its own change (the scale subresource
# answers with a Scale, not the AgentCluster, so there is nothing to put in the cache).
WRITE_VISIBLE_SECONDS = 5.0


def api_client(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    config.load_incluster_config()
    return client.ApiClient()


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns `old` into `new` (lists are replaced whole)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """An AgentCluster as the cache keeps it: without managedFields, which no tool reads and
    which can be most of an object's size."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def agentcluster_informers(api: client.ApiClient, namespaces: tuple[str, ...]) -> informer.Scoped[dict[str, Any]]:
    objects = client.CustomObjectsApi(api)

    def make(namespace: str | None) -> informer.Informer[dict[str, Any]]:
        if namespace is None:
            source = informer.Source("agentclusters in all namespaces",
                                     lambda **kw: objects.list_cluster_custom_object(G, V, P, **kw))
        else:
            source = informer.Source(f"agentclusters in namespace {namespace}",
                                     lambda **kw: objects.list_namespaced_custom_object(G, V, namespace, P, **kw))
        return informer.Informer(source, slim)

    return informer.Scoped(make, namespaces)


class Kube:
    def __init__(self, api: client.ApiClient, clusters: informer.Scoped[dict[str, Any]] | None = None) -> None:
        self.api = api
        self._objects = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)
        self._clusters = clusters

    # --- AgentClusters ------------------------------------------------------------------

    async def _cache(self, namespace: str) -> informer.Informer[dict[str, Any]] | None:
        """The synced cache that sees `namespace`, or None to read from the API server."""
        cache = self._clusters.informer(namespace) if self._clusters is not None else None
        if cache is None:
            return None
        if not await cache.wait_synced(SYNC_WAIT_SECONDS):
            raise errors.GatewayError(
                f"the gateway has not yet loaded the agents of namespace {namespace!r} from the API server "
                f"({cache.last_error or 'still listing'}); try again in a few seconds",
                code="unavailable", retry_after_seconds=errors.RETRY_SECONDS)
        return cache

    async def get(self, namespace: str, name: str) -> dict:
        """The AgentCluster, from the cache where there is one: shared, never to be changed."""
        cache = await self._cache(namespace)
        if cache is None:
            return await self.read(namespace, name)
        found = cache.get(namespace, name)
        if found is None:
            known = [item["metadata"]["name"] for item in cache.in_namespace(namespace)]
            raise errors.unknown_agent(namespace, name, sorted(known))
        # The cached object itself, not a copy (a deep copy costs more than the rest of the
        # lookup, hundreds of microseconds per chat): what `get` and `list` answer is shared
        # and read-only; `update_spec` hands its `edit` a copy.
        return found

    async def read(self, namespace: str, name: str) -> dict:
        """The AgentCluster from the API server itself (put in the cache as well)."""
        try:
            found = await asyncio.to_thread(self._objects.get_namespaced_custom_object, G, V, namespace, P, name)
        except ApiException as exc:
            if exc.status == 404:
                known = [item["metadata"]["name"] for item in await self.list(namespace)]
                raise errors.unknown_agent(namespace, name, known) from None
            raise errors.from_api(exc, f"reading agent {name!r}: {errors.api_message(exc)}") from None
        self._written(namespace, found)
        return found

    async def list(self, namespace: str) -> list[dict]:
        cache = await self._cache(namespace)
        if cache is not None:
            items = cache.in_namespace(namespace)
        else:
            try:
                found = await asyncio.to_thread(self._objects.list_namespaced_custom_object, G, V, namespace, P)
            except ApiException as exc:
                raise errors.from_api(exc, f"listing agents: {errors.api_message(exc)}") from None
            items = found.get("items") or []
        return sorted(items, key=lambda item: item["metadata"]["name"])

    def _written(self, namespace: str, obj: Any) -> None:
        """Put the API server's answer to a write (or a fresh read) into the cache."""
        cache = self._clusters.informer(namespace) if self._clusters is not None else None
        if cache is not None and isinstance(obj, dict) and obj.get("kind") == constants.KIND:
            cache.apply(obj)

    async def create(self, namespace: str, body: dict) -> dict:
        try:
            created = await asyncio.to_thread(self._objects.create_namespaced_custom_object, G, V, namespace, P, body)
        except ApiException as exc:
            if exc.status == 409:
                raise errors.GatewayError(
                    f'an agent named "{body["metadata"]["name"]}" already exists in namespace "{namespace}"',
                    code="conflict") from None
            raise errors.from_api(exc) from None
        self._written(namespace, created)
        return created

    async def update_spec(self, namespace: str, name: str, edit: Callable[[dict], dict],
                          authorize: Callable[[dict, dict], Awaitable[None]] | None = None) -> dict:
        """Apply `edit` (old spec -> new spec) with a resourceVersion precondition, re-reading
        and recomputing on conflict. `edit` may raise GatewayError to refuse, and so may
        `authorize(old, new)`, which sees every recomputed result before it is sent."""
        for attempt in range(CONFLICT_RETRIES):
            # After a conflict the cache may be what is behind: ask the API server itself.
            current = await (self.get(namespace, name) if attempt == 0 else self.read(namespace, name))
            old = current.get("spec") or {}
            new = edit(copy.deepcopy(old))
            if authorize is not None:
                await authorize(old, new)
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                     "spec": merge_patch(old, new)}
            try:
                return await self._patch(namespace, name, patch)
            except errors.Conflict:
                continue
        raise errors.GatewayError(
            f"agent {name!r} kept changing while this edit was applied ({CONFLICT_RETRIES} conflicts); try again",
            code="conflict")

    async def scale(self, namespace: str, name: str, replicas: int) -> dict:
        for attempt in range(CONFLICT_RETRIES):
            current = await (self.get(namespace, name) if attempt == 0 else self.read(namespace, name))
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                     "spec": {"replicas": replicas}}
            try:
                scaled = await asyncio.to_thread(self._objects.patch_namespaced_custom_object_scale,
                                                 G, V, namespace, P, name, patch)
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise errors.from_api(exc) from None
            await self._visible(namespace, name, (scaled.get("metadata") or {}).get("resourceVersion"))
            return scaled
        raise errors.GatewayError(f"agent {name!r} kept changing while scaling; try again", code="conflict")

    async def delete(self, namespace: str, name: str) -> None:
        try:
            gone = await asyncio.to_thread(self._objects.delete_namespaced_custom_object, G, V, namespace, P, name)
        except ApiException as exc:
            if exc.status == 404:
                raise errors.unknown_agent(namespace, name) from None
            raise errors.from_api(exc) from None
        # The answer is the object when a finalizer keeps it for now (deletionTimestamp set),
        # a Status once it is gone.
        cache = self._clusters.informer(namespace) if self._clusters is not None else None
        if cache is not None:
            if isinstance(gone, dict) and gone.get("kind") == constants.KIND:
                cache.apply(gone)
            else:
                cache.forget({"metadata": {"namespace": namespace, "name": name}})

    async def _patch(self, namespace: str, name: str, patch: dict) -> dict:
        try:
            patched = await asyncio.to_thread(self._objects.patch_namespaced_custom_object,
                                              G, V, namespace, P, name, patch)
        except ApiException as exc:
            if exc.status == 409:
                raise errors.Conflict() from None
            raise errors.from_api(exc) from None
        self._written(namespace, patched)
        return patched

    async def _visible(self, namespace: str, name: str, version: str | None) -> None:
        """Wait until the cache holds `version` of the object (a write answered with something
        else than the object itself)."""
        cache = self._clusters.informer(namespace) if self._clusters is not None else None
        if cache is None or version is None:
            return
        if not await cache.wait_for(namespace, name, version, WRITE_VISIBLE_SECONDS):
            log.warning("the watch has not delivered %s/%s at resourceVersion %s within %.0fs; reading it",
                        namespace, name, version, WRITE_VISIBLE_SECONDS)
            await self.read(namespace, name)

    # --- Pods ---------------------------------------------------------------------------

    async def pod(self, namespace: str, name: str) -> client.V1Pod | None:
        """A replica's pod, or None if there is none: routing checks the address a replica
        registered in Redis against the pod's IP (agent_gateway/routing.py)."""
        try:
            return await asyncio.to_thread(self._core.read_namespaced_pod, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise errors.from_api(
                exc, f"reading pod {name!r} in namespace {namespace!r}: {errors.api_message(exc)}") from None

    # --- Secrets ------------------------------------------------------------------------

    async def replica_token(self, namespace: str, cluster: str) -> str:
        """A cluster's replica token from its namespace's token Secret, read with this client's
        own identity (over stdio: the kubeconfig's user, who needs `get` on that one Secret)."""
        name = replica_auth.SECRET_NAME
        try:
            secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            raise errors.from_api(
                exc, f'the replica tokens of namespace "{namespace}" are in Secret "{name}", which could not be read '
                f"as the kubeconfig's user: {errors.api_message(exc)}. Over stdio, chat needs `get` on that "
                f'Secret (a Role with resourceNames: ["{name}"])') from None
        raw = (secret.data or {}).get(cluster)
        if not raw:
            raise errors.GatewayError(f'Secret "{name}" has no token for agent "{cluster}" yet; the operator writes '
                                      "it, try again in a few seconds", code="unavailable",
                                      retry_after_seconds=errors.RETRY_SECONDS)
        return base64.b64decode(raw).decode()

    # --- Authentication and authorization ------------------------------------------------

    async def token_review(self, token: str, audiences: list[str]) -> client.V1TokenReviewStatus:
        review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=audiences))
        answer = await asyncio.to_thread(self._authn.create_token_review, review)
        return answer.status

    async def whoami(self) -> str | None:
        """The user name of this client's own credentials (SelfSubjectReview), None if the
        API server will not say."""
        try:
            answer = await asyncio.to_thread(self._authn.create_self_subject_review,
                                             client.V1SelfSubjectReview())
        except ApiException:
            return None
        user = answer.status.user_info if answer.status else None
        return user.username if user else None

    async def access_review(self, user: str | None, groups: list[str], uid: str | None,
                            extra: dict[str, list[str]] | None,
                            attributes: client.V1ResourceAttributes) -> client.V1SubjectAccessReviewStatus:
        if user is None:
            review = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
            answer = await asyncio.to_thread(self._authz.create_self_subject_access_review, review)
        else:
            review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
                user=user, groups=groups, uid=uid, extra=extra, resource_attributes=attributes))
            answer = await asyncio.to_thread(self._authz.create_subject_access_review, review)
        return answer.status
