"""Who is calling, and may they: TokenReview for the bearer token, SubjectAccessReview per tool.

Kubernetes RBAC is the permission model: a tool that reads needs `get`/`list` on
`agentclusters` in the agent's namespace, one that changes needs `create`/`patch`/`delete`
(scaling: `patch` on `agentclusters/scale`), and a change that newly references a Secret needs
`get` on that Secret (`agent_api.secret_refs`: the gateway writes with its own identity, so
the admission webhook leaves this check to it). Over HTTP the MCP SDK's bearer middleware calls
`KubeTokenVerifier` (no or bad token -> 401) and the tools read the caller from its context.

A token counts only if it was minted for this gateway: the TokenReview names the gateway's
audience (default `agentclusters-gateway`) and the API server must confirm it in
`status.audiences`. Without that, any token the API server accepts would do, such as the
projected ServiceAccount token every pod has, which the pod's workload may hand to anyone.
Callers get one with `kubectl create token <serviceaccount> --audience agentclusters-gateway`.

Over stdio the caller is whoever owns the kubeconfig, checked with SelfSubjectAccessReview.
Over HTTP there is no such fallback: a tool call without a token's caller is refused, never
run as the gateway itself (whose own account may do far more than any caller).
Answers are cached for a few seconds, keyed by a hash of the token, never the token itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_api import constants, secret_refs
from agent_gateway import errors, kube, settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    username: str
    groups: tuple[str, ...] = ()
    uid: str | None = None
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    local: bool = False
    """True over stdio: the kubeconfig's own identity (SelfSubjectAccessReview)."""

    @property
    def key(self) -> str:
        """A stable, non-secret id for rate limits and default conversations."""
        return _key(self.username)


@functools.lru_cache(maxsize=4096)
def _key(username: str) -> str:
    return hashlib.sha256(username.encode()).hexdigest()[:16]


LOCAL = Caller(username="kubeconfig user", local=True)
"""Over stdio when the API server cannot say who the kubeconfig's user is."""


def how_to_get_a_token(audience: str) -> str:
    return f"kubectl create token <serviceaccount> -n <namespace> --audience {audience}"


class _TtlCache:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._items: dict[object, tuple[float, object]] = {}

    def get(self, key: object) -> object | None:
        found = self._items.get(key)
        if found is None or found[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return found[1]

    def put(self, key: object, value: object) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.seconds, value)


class KubeTokenVerifier:
    """The MCP SDK's TokenVerifier, answered by the API server's TokenReview for `audience`."""

    def __init__(self, api: kube.Kube, cache_seconds: float, audience: str) -> None:
        self._kube = api
        self._cache = _TtlCache(cache_seconds)
        self.audience = audience

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None:
            return cached if isinstance(cached, AccessToken) else None
        try:
            status = await self._kube.token_review(token, [self.audience])
        except ApiException:
            return None
        if not status.authenticated or status.user is None:
            self._cache.put(digest, False)
            return None
        user = status.user
        # An authenticator that ignores audiences answers with none: such a token was not
        # minted for us, whoever it names.
        if self.audience not in (status.audiences or []):
            log.info("refused a token of %s: its review lists audiences %s, not %r", user.username,
                     status.audiences or "none", self.audience)
            self._cache.put(digest, False)
            return None
        access = AccessToken(
            token=token, client_id=user.username, scopes=[], subject=user.username,
            claims={"groups": list(user.groups or []), "uid": user.uid, "extra": dict(user.extra or {})},
        )
        self._cache.put(digest, access)
        return access


def current_caller(local: Caller | None) -> Caller:
    """The caller of the tool being run: the token's user over HTTP; over stdio (`local` is
    the kubeconfig's identity) that identity. Over HTTP a call without a token's user is
    refused: the gateway never acts as itself for anyone."""
    access = get_access_token()
    if access is None:
        if local is not None:
            return local
        raise errors.GatewayError(
            "no bearer token came with this call: the gateway acts only for an authenticated caller. "
            "Send Authorization: Bearer <a Kubernetes token minted for this gateway>", code="forbidden")
    claims = access.claims or {}
    extra = tuple(sorted((k, tuple(v)) for k, v in (claims.get("extra") or {}).items()))
    return Caller(username=access.subject or access.client_id, groups=tuple(claims.get("groups") or ()),
                  uid=claims.get("uid"), extra=extra)


@dataclass
class Authorizer:
    kube: kube.Kube
    cache_seconds: float
    _cache: _TtlCache = field(init=False)

    def __post_init__(self) -> None:
        self._cache = _TtlCache(self.cache_seconds)

    async def require(self, caller: Caller, namespace: str, verb: str, subresource: str = "") -> None:
        allowed = await self._allowed(caller, namespace, verb, constants.GROUP, constants.PLURAL,
                                      subresource=subresource or None)
        if not allowed:
            resource = constants.PLURAL + (f"/{subresource}" if subresource else "")
            raise errors.GatewayError(
                f'forbidden: {caller.username} may not {verb} {resource}.{constants.GROUP} in namespace '
                f'"{namespace}" (Kubernetes RBAC; ask for a Role granting it)',
                code="forbidden")

    async def require_secret_access(self, caller: Caller, namespace: str,
                                    uses: list[secret_refs.SecretUse]) -> None:
        """The caller may get every Secret these references name, or the change is refused.

        Only RBAC is asked, never whether the Secret exists, so a missing Secret and an existing
        one the caller may not read get the same answer: the gateway is no oracle for Secrets.
        """
        denied = set()
        for name in dict.fromkeys(use.secret for use in uses):
            if not await self._allowed(caller, namespace, "get", "", "secrets", name=name):
                denied.add(name)
        if denied:
            raise errors.GatewayError(
                secret_refs.refusal(caller.username, namespace, [use for use in uses if use.secret in denied]),
                code="forbidden")

    async def _allowed(self, caller: Caller, namespace: str, verb: str, group: str, resource: str,
                       subresource: str | None = None, name: str | None = None) -> bool:
        key = (caller, namespace, verb, group, resource, subresource, name)
        allowed = self._cache.get(key)
        if allowed is None:
            # The client's model (which validates every field) only for a review, not for
            # every tool call the cache answers.
            attributes = client.V1ResourceAttributes(namespace=namespace, verb=verb, group=group, resource=resource,
                                                     subresource=subresource, name=name)
            try:
                status = await self.kube.access_review(
                    None if caller.local else caller.username, list(caller.groups), caller.uid,
                    {k: list(v) for k, v in caller.extra} or None, attributes)
            except ApiException as exc:
                raise errors.GatewayError(
                    f"could not check permissions with the API server: {errors.api_message(exc)}",
                    code="unavailable") from None
            allowed = bool(status.allowed)
            self._cache.put(key, allowed)
        return bool(allowed)


MCP_PATH = "/mcp"


def explain_refusals(app: ASGIApp, config: settings.Settings) -> ASGIApp:
    """The SDK answers a refused token with "Authentication required"; say instead what was
    wrong and how to get a token that works (the 401 and its WWW-Authenticate stay as they are)."""
    audience = config.token_audience
    no_token = (f'no bearer token: send "Authorization: Bearer <token>" with a Kubernetes token minted for this '
                f"gateway, e.g. {how_to_get_a_token(audience)}")
    refused = (f'the bearer token was refused: this gateway accepts Kubernetes tokens minted for the audience '
               f'"{audience}" ({how_to_get_a_token(audience)}); this one is unknown, expired, or meant for '
               "another audience (a pod's own ServiceAccount token is)")

    async def explaining(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").rstrip("/") != MCP_PATH:
            await app(scope, receive, send)  # /hooks answers its own refusals
            return
        sent_token = any(name == b"authorization" and value[:7].lower() == b"bearer "
                         for name, value in scope.get("headers") or [])
        held: dict[str, Message] = {}
        replaced = False

        async def send_explained(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 401:
                held["start"] = message
                return
            if message["type"] == "http.response.body" and ("start" in held or replaced):
                if replaced:  # the rest of a refusal body we already replaced
                    return
                body = json.dumps({"error": "invalid_token",
                                   "error_description": refused if sent_token else no_token}).encode()
                start = held.pop("start")
                headers = [(k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                replaced = True
                return
            await send(message)

        await app(scope, receive, send_explained)

    return explaining
