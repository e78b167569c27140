"""The gateway's Kubernetes calls: AgentClusters, their scale subresource, replica pods (to
check the addresses in Redis), the replica token Secret (over stdio only), and the
TokenReview / SubjectAccessReview that make Kubernetes RBAC the permission model.

Every change is a JSON merge patch carrying the `metadata.resourceVersion` it was computed
from, so the API server answers 409 if anyone (kubectl, GitOps, another MCP call) changed the
object in between; `update_spec` then re-reads and recomputes. The official client is
synchronous; its calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from agent_api import constants, replica_auth
from agent_gateway import errors

G, V, P = constants.GROUP, constants.VERSION, constants.PLURAL
CONFLICT_RETRIES = 8


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


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._objects = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)

    # --- AgentClusters ------------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> dict:
        try:
            return await asyncio.to_thread(self._objects.get_namespaced_custom_object, G, V, namespace, P, name)
        except ApiException as exc:
            if exc.status == 404:
                known = [item["metadata"]["name"] for item in await self.list(namespace)]
                raise errors.unknown_agent(namespace, name, known) from None
            raise errors.from_api(exc, f"reading agent {name!r}: {errors.api_message(exc)}") from None

    async def list(self, namespace: str) -> list[dict]:
        try:
            found = await asyncio.to_thread(self._objects.list_namespaced_custom_object, G, V, namespace, P)
        except ApiException as exc:
            raise errors.from_api(exc, f"listing agents: {errors.api_message(exc)}") from None
        return sorted(found.get("items") or [], key=lambda item: item["metadata"]["name"])

    async def create(self, namespace: str, body: dict) -> dict:
        try:
            return await asyncio.to_thread(self._objects.create_namespaced_custom_object, G, V, namespace, P, body)
        except ApiException as exc:
            if exc.status == 409:
                raise errors.GatewayError(
                    f'an agent named "{body["metadata"]["name"]}" already exists in namespace "{namespace}"',
                    code="conflict") from None
            raise errors.from_api(exc) from None

    async def update_spec(self, namespace: str, name: str, edit: Callable[[dict], dict],
                          authorize: Callable[[dict, dict], Awaitable[None]] | None = None) -> dict:
        """Apply `edit` (old spec -> new spec) with a resourceVersion precondition, re-reading
        and recomputing on conflict. `edit` may raise GatewayError to refuse, and so may
        `authorize(old, new)`, which sees every recomputed result before it is sent."""
        for _ in range(CONFLICT_RETRIES):
            current = await self.get(namespace, name)
            old = current.get("spec") or {}
            new = edit(old)
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
        for _ in range(CONFLICT_RETRIES):
            current = await self.get(namespace, name)
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                     "spec": {"replicas": replicas}}
            try:
                return await asyncio.to_thread(self._objects.patch_namespaced_custom_object_scale,
                                               G, V, namespace, P, name, patch)
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise errors.from_api(exc) from None
        raise errors.GatewayError(f"agent {name!r} kept changing while scaling; try again", code="conflict")

    async def delete(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(self._objects.delete_namespaced_custom_object, G, V, namespace, P, name)
        except ApiException as exc:
            if exc.status == 404:
                raise errors.unknown_agent(namespace, name) from None
            raise errors.from_api(exc) from None

    async def _patch(self, namespace: str, name: str, patch: dict) -> dict:
        try:
            return await asyncio.to_thread(self._objects.patch_namespaced_custom_object,
                                           G, V, namespace, P, name, patch)
        except ApiException as exc:
            if exc.status == 409:
                raise errors.Conflict() from None
            raise errors.from_api(exc) from None

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
