"""The operator's Kubernetes API calls, as plain dicts, off the event loop.

The official client is synchronous; every call runs in a worker thread so the kopf event loop
stays responsive. Responses are raw JSON (camelCase, exactly as `kubectl get -o json` shows),
so manifests and status read the same in code, tests and docs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from agent_api import constants
from agent_operator.cache import WatchCache

Obj = dict[str, Any]

# Threads for the API calls, and connections to the API server kept open for them. asyncio's
# default pool has min(32, cores + 4) threads (6 on 2 cores) and the client keeps cores x 5
# connections (10): a scale-up's concurrent pod creates (reconcile.POD_CALLS_AT_ONCE per
# cluster, `workers` clusters at once) and the admission webhook's reviews queued behind 6
# threads. One kept connection per thread, so no call opens (and then drops) a TLS connection
# of its own. Threads and connections start only when calls wait for one: a settled operator
# keeps a handful.
API_THREADS = 32
_EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="kube-api")


class Conflict(Exception):
    """The object changed since it was read (HTTP 409): re-read and reconcile again."""


class Refused(Exception):
    """The API server refused to create an object: Pod Security admission, a ResourceQuota, a
    LimitRange, a webhook, an invalid object... The message is the API server's own."""


class ReviewFailed(Exception):
    """A SubjectAccessReview could not be made; the webhook then admits nothing it would check."""


def load_client(kubeconfig: str | None = None) -> client.ApiClient:
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
    # Read when a client is made from it (the reconcile's fenced client is made from this one).
    configuration.connection_pool_maxsize = API_THREADS
    return client.ApiClient(configuration)


class Kube:
    """With a `cache` (the reconcile's), reads come from kopf's watches (`cache.py`) and every
    write's answer is handed to the cache; without one (admission), every read is a request."""

    def __init__(self, api_client: client.ApiClient, cache: WatchCache | None = None) -> None:
        self.api_client = api_client
        self.cache = cache
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.authz = client.AuthorizationV1Api(api_client)
        self.policy = client.PolicyV1Api(api_client)

    # --- AgentClusters ---------------------------------------------------------------
    async def get_cluster(self, namespace: str, name: str, *, fresh: bool = False) -> Obj | None:
        """`fresh`: ask the API server even with a cache (to confirm an absence)."""
        if self.cache is not None and not fresh:
            return self.cache.cluster(namespace, name)
        return await _call(
            self.custom.get_namespaced_custom_object,
            constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name,
            not_found=None,
        )

    async def list_clusters(self, namespace: str) -> list[Obj]:
        if self.cache is not None:
            return self.cache.clusters(namespace)
        result = await _call(
            self.custom.list_namespaced_custom_object,
            constants.GROUP, constants.VERSION, namespace, constants.PLURAL,
        )
        return result["items"]

    async def list_all_clusters(self, namespace: str | None) -> list[Obj]:
        """Every AgentCluster in `namespace`, or in the whole cluster for None."""
        if self.cache is not None:
            return self.cache.clusters(namespace)
        if namespace is not None:
            return await self.list_clusters(namespace)
        result = await _call(
            self.custom.list_cluster_custom_object, constants.GROUP, constants.VERSION, constants.PLURAL,
        )
        return result["items"]

    async def patch_cluster_status(self, namespace: str, name: str, status: Obj, resource_version: str) -> Obj:
        """Replace status; the resourceVersion precondition turns a lost race into Conflict."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        return self._wrote(await _call(
            self.custom.patch_namespaced_custom_object_status,
            constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name, body,
        ))

    async def patch_cluster_finalizers(
        self, namespace: str, name: str, finalizers: list[str], resource_version: str
    ) -> Obj | None:
        body = {"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}}
        return self._wrote(await _call(
            self.custom.patch_namespaced_custom_object,
            constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name, body,
            not_found=None,
        ))

    # --- Pods --------------------------------------------------------------------------
    async def list_pods(self, namespace: str, cluster: str) -> list[Obj]:
        if self.cache is not None:
            return self.cache.pods(namespace, cluster)
        result = await _call(
            self.core.list_namespaced_pod, namespace,
            label_selector=f"{constants.LABEL_CLUSTER}={cluster}", raw=True,
        )
        return result["items"]

    async def create_pod(self, namespace: str, pod: Obj) -> bool:
        """Create; False if a pod of that name already exists. Raises Refused with the API
        server's message when it refuses the pod, whatever the reason."""
        try:
            created = await _call(self.core.create_namespaced_pod, namespace, pod, raw=True, exists=False)
        except ApiException as error:
            raise Refused(f"{error.status} {error.reason}: {_message(error)}") from error
        return self._wrote(created) is not False

    async def delete_pod(self, namespace: str, name: str, uid: str | None = None) -> None:
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid) if uid else None)
        # Not handed to the cache: the pod will vanish from the watch, and a copy kept meanwhile
        # would outlive it; a pass that still sees the pod without its deletionTimestamp deletes
        # it again (harmless: same uid, or NotFound).
        await _call(self.core.delete_namespaced_pod, name, namespace, body=body, raw=True, not_found=None)

    # --- PodDisruptionBudgets ------------------------------------------------------------
    async def get_budget(self, namespace: str, name: str) -> Obj | None:
        if self.cache is not None:
            return self.cache.budget(namespace, name)
        return await _call(self.policy.read_namespaced_pod_disruption_budget, name, namespace,
                           raw=True, not_found=None)

    async def create_budget(self, namespace: str, budget: Obj) -> None:
        """Create; one created meanwhile (by another pass) is the next pass's to compare."""
        self._wrote(await _call(self.policy.create_namespaced_pod_disruption_budget, namespace, budget,
                                raw=True, exists=None))

    async def patch_budget(self, namespace: str, name: str, patch: Obj, resource_version: str) -> None:
        """Patch the budget read at `resource_version` (a lost race raises Conflict)."""
        body = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": resource_version}}
        self._wrote(await _call(self.policy.patch_namespaced_pod_disruption_budget, name, namespace, body,
                                raw=True))

    async def delete_budget(self, namespace: str, name: str, uid: str, resource_version: str | None = None) -> None:
        """Delete the budget of that uid (read at `resource_version`, which the cache then
        treats as deleted until the watch agrees)."""
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        await _call(self.policy.delete_namespaced_pod_disruption_budget, name, namespace, body=body,
                    raw=True, not_found=None)
        if self.cache is not None:
            self.cache.deleted("PodDisruptionBudget", namespace, name, resource_version)

    # --- Namespaces, Secrets, Events ---------------------------------------------------
    async def namespace_labels(self, namespace: str) -> dict[str, str]:
        if self.cache is not None and (labels := self.cache.namespace_labels(namespace)) is not None:
            return labels
        result = await _call(self.core.read_namespace, namespace, raw=True)
        return result["metadata"].get("labels") or {}

    async def write_secret(self, namespace: str, name: str, data: dict[str, str],
                           annotations: dict[str, str], resource_version: str | None) -> Obj:
        """Create the Opaque Secret (`resource_version` None) or update these keys and
        annotations of the one read at `resource_version` (others are kept); a Secret changed
        since it was read raises Conflict, so nobody's edit is overwritten unseen."""
        if resource_version is None:
            body = {
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "annotations": annotations,
                             "labels": {"app.kubernetes.io/managed-by": "agent-clusters"}},
                "type": "Opaque", "stringData": data,
            }
            created = await _call(self.core.create_namespaced_secret, namespace, body, raw=True,
                                  exists=None)
            if created is None:
                raise Conflict(f"Secret {namespace}/{name} was created meanwhile")
            return created
        patch = {"metadata": {"resourceVersion": resource_version, "annotations": annotations},
                 "stringData": data}
        return await _call(self.core.patch_namespaced_secret, name, namespace, patch, raw=True)

    async def read_secret(self, namespace: str, name: str) -> Obj | None:
        return await _call(self.core.read_namespaced_secret, name, namespace, raw=True, not_found=None)

    def _wrote(self, result: Any) -> Any:
        """Hand a write's answer (an object) to the cache; returns it unchanged."""
        if self.cache is not None and isinstance(result, dict):
            self.cache.wrote(result)
        return result

    # --- Authorization ----------------------------------------------------------------
    async def secrets_denied(self, user: Obj, namespace: str, names: list[str]) -> list[str]:
        """The Secrets among `names` that `user` (an admission request's userInfo: username,
        uid, groups, extra) may not get, by the API server's own authorizers: one
        SubjectAccessReview per distinct name. Raises ReviewFailed if a review cannot be made."""
        identity = {"user": user.get("username"), "uid": user.get("uid"), "groups": user.get("groups"),
                    "extra": user.get("extra")}
        denied = []
        for name in dict.fromkeys(names):
            body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
                **{k: v for k, v in identity.items() if v is not None},
                "resourceAttributes": {"namespace": namespace, "verb": "get", "resource": "secrets", "name": name},
            }}
            try:
                review = await _call(self.authz.create_subject_access_review, body, raw=True)
            except ApiException as error:
                raise ReviewFailed(f'SubjectAccessReview for Secret "{name}": {error.status} {_message(error)}') \
                    from error
            if not (review.get("status") or {}).get("allowed"):
                denied.append(name)
        return denied

    async def create_event(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on `obj`, so `kubectl describe` shows it."""
        meta = obj["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type, "reason": reason, "message": message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": "agentclusters-operator"},
            "reportingComponent": "agentclusters-operator",
        }
        await _call(self.core.create_namespaced_event, meta["namespace"], body, raw=True)


async def _call(method: Any, *args: Any, raw: bool = False, not_found: Any = ..., exists: Any = ...,
                **kwargs: Any) -> Any:
    """Run one API call in a thread of the API pool. `not_found`/`exists`: what to return on 404/409-exists
    instead of raising (treating "already done" as success)."""
    if raw:
        kwargs["_preload_content"] = False

    def run() -> Any:
        response = method(*args, **kwargs)
        return json.loads(response.data) if raw else response

    try:
        return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, contextvars.copy_context().run, run)
    except ApiException as error:
        if error.status == 404 and not_found is not ...:
            return not_found
        if error.status == 409:
            if exists is not ... and "AlreadyExists" in (error.body or ""):
                return exists
            raise Conflict(_message(error)) from error
        raise


def _message(error: ApiException) -> str:
    try:
        return json.loads(error.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(error.reason)
