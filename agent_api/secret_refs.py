"""Which Secrets an AgentCluster spec references, where, and what each value is used for.

A Secret reference is a capability: the replicas receive the Secret's value and send it
somewhere (the AI key to the provider's endpoint, MCP headers to the MCP server, an http
function's headers to its URL). Whoever writes a reference must therefore be allowed to read
the Secret, or an AgentCluster becomes a way to read Secrets its author cannot (point
`ai.baseURL` at your own server and wait for the key).

The operator's admission webhook and the MCP gateway both check this with a
SubjectAccessReview (`get` on the Secret) for the references a change *adds*: those whose
Secret, key and use the old spec did not already have. So a teammate may scale or edit an
AgentCluster without reading the team's Secrets, while re-pointing an existing reference
(a new `ai.baseURL`, a new MCP server URL) counts as new. Both refuse in the words of
`refusal`, so a user reads the same message either way in.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import pydantic

from agent_api import models

# Name of the Role `refusal` suggests creating; fixed so the suggestion is copy-pasteable.
SUGGESTED_ROLE = "read-agent-secrets"
SERVICE_ACCOUNT_USER_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class SecretUse:
    """One reference: which Secret (and key), at which field, used for what."""

    secret: str
    key: str | None
    """None: every key of the Secret (`mcpServers[].headersSecretRef`)."""
    field: str
    """Where in the spec, e.g. spec.channels[0].urlSecretRef."""
    use: str
    """What the value is used for, naming its destination, e.g. "sent to https://…"."""

    @property
    def identity(self) -> tuple[str, str | None, str]:
        """What makes two references the same grant: the field's position does not matter,
        the destination does."""
        return (self.secret, self.key, self.use)


def uses(spec: models.AgentClusterSpec) -> list[SecretUse]:
    """Every Secret reference of the spec (the fields are those of `models` typed
    `SecretKeyRef` or `SecretRef`)."""
    found = []
    if spec.ai is not None and spec.ai.api_key_secret_ref is not None:
        ref = spec.ai.api_key_secret_ref
        destination = spec.ai.base_url or f"{spec.ai.provider}'s default endpoint"
        found.append(SecretUse(ref.name, ref.key, "spec.ai.apiKeySecretRef", f"sent to {destination}"))
    for i, function in enumerate(spec.functions):
        if function.http is None:
            continue
        for j, header in enumerate(function.http.headers):
            found.append(SecretUse(header.secret_key_ref.name, header.secret_key_ref.key,
                                   f"spec.functions[{i}].http.headers[{j}].secretKeyRef",
                                   f"sent to {function.http.url}"))
    for i, webhook in enumerate(spec.webhooks):
        found.append(SecretUse(webhook.secret_ref.name, webhook.secret_ref.key, f"spec.webhooks[{i}].secretRef",
                               "used to check webhook signatures"))
    for i, channel in enumerate(spec.channels):
        found.append(SecretUse(channel.url_secret_ref.name, channel.url_secret_ref.key,
                               f"spec.channels[{i}].urlSecretRef", "posted to as a channel URL"))
    for i, server in enumerate(spec.mcp_servers):
        if server.headers_secret_ref is not None:
            found.append(SecretUse(server.headers_secret_ref.name, None, f"spec.mcpServers[{i}].headersSecretRef",
                                   f"every key sent as a header to {server.url}"))
    return found


def added(old: dict[str, Any] | None, new: dict[str, Any]) -> list[SecretUse]:
    """The references of `new` (a valid spec, wire form) that `old` did not have.

    An `old` the models refuse (stored under an older CRD) counts as having none: every
    reference is then checked, which only ever asks for more, never less.
    """
    before: set[tuple[str, str | None, str]] = set()
    if old is not None:
        try:
            before = {use.identity for use in uses(models.AgentClusterSpec.model_validate(old))}
        except pydantic.ValidationError:
            before = set()
    return [use for use in uses(models.AgentClusterSpec.model_validate(new)) if use.identity not in before]


def refusal(user: str, namespace: str, denied: list[SecretUse]) -> str:
    """The message for references `user` may not make: each Secret with its fields and uses,
    why, and the Role that would allow it. It never depends on whether a Secret exists."""
    by_secret: dict[str, list[SecretUse]] = {}
    for use in denied:
        by_secret.setdefault(use.secret, []).append(use)
    clauses = []
    for secret, found in by_secret.items():
        where = " and ".join(
            f"{use.field} ({f'key {use.key!r}, ' if use.key is not None else ''}{use.use})" for use in found)
        clauses.append(f'user "{user}" may not get Secret "{secret}" in namespace "{namespace}", '
                       f"which this change would newly reference at {where}")
    names = " ".join(f"--resource-name={shlex.quote(secret)}" for secret in by_secret)
    return (
        "forbidden: " + "; ".join(clauses) + ". An AgentCluster may only reference Secrets its author may read "
        "(its replicas receive their values). To allow it, grant get on them, e.g. "
        f"kubectl -n {namespace} create role {SUGGESTED_ROLE} --verb=get --resource=secrets {names} && "
        f"kubectl -n {namespace} create rolebinding {SUGGESTED_ROLE} --role={SUGGESTED_ROLE} {_subject(user)}; "
        "or have someone who may read them make this change"
    )


def _subject(user: str) -> str:
    """The `kubectl create rolebinding` flag naming this user."""
    if user.startswith(SERVICE_ACCOUNT_USER_PREFIX) and user.count(":") == 3:
        return f"--serviceaccount={user.removeprefix(SERVICE_ACCOUNT_USER_PREFIX)}"
    return f"--user={shlex.quote(user)}"
