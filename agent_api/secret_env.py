"""How Secret values reach a replica: the environment variable names, in one place.

The operator writes these names into each replica pod (`secretKeyRef` / `envFrom`), the
runtime reads them back. Secret values never pass through the custom resource or PostgreSQL.

| source in the spec | variable |
| --- | --- |
| `spec.ai.apiKeySecretRef` | `AGENT_AI_API_KEY` |
| `spec.channels[].urlSecretRef` | `AGENT_CHANNEL_<NAME>_URL` |
| `spec.mcpServers[].headersSecretRef` (a whole Secret) | `AGENT_MCP_<NAME>_HEADER_<Header-Name>`, one per key |
| `spec.functions[].http.headers[].secretKeyRef` | `AGENT_HTTP_<FUNCTION>_HEADER_<HEADER>_<digest>` |
| `spec.webhooks[].secretRef` | `AGENT_WEBHOOK_<NAME>_SECRET` (the replica verifies the deliveries' signatures) |
| the cluster's replica token (`agent_api.replica_auth`) | `AGENT_REPLICA_TOKEN` |

`<NAME>` is the channel, server or webhook name upper-cased with '-' turned into '_'; names are DNS
labels (no '_'), so two names never map to one variable. MCP headers use `envFrom` with a
prefix, so every key of the Secret becomes one header named after the key, as the API
promises ("every key is sent as an HTTP header of that name").

An http function's header variable ends in a digest of the function and header names: function
names may hold '.' and '-' and header names differ by case, so the readable part alone could map
two headers to one variable; the digest keeps them apart, the readable part is for `kubectl
describe pod`.
"""

from __future__ import annotations

import hashlib

from agent_api import replica_auth

AI_API_KEY = "AGENT_AI_API_KEY"
REPLICA_TOKEN = replica_auth.TOKEN_ENV
_CHANNEL_PREFIX = "AGENT_CHANNEL_"
_MCP_PREFIX = "AGENT_MCP_"
_WEBHOOK_PREFIX = "AGENT_WEBHOOK_"
_HTTP_PREFIX = "AGENT_HTTP_"


def _upper(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


def channel_url(channel: str) -> str:
    """`AGENT_CHANNEL_<NAME>_URL` for a channel name."""
    return f"{_CHANNEL_PREFIX}{_upper(channel)}_URL"


def mcp_header_prefix(server: str) -> str:
    """The `envFrom` prefix of an MCP server's header Secret: `AGENT_MCP_<NAME>_HEADER_`."""
    return f"{_MCP_PREFIX}{_upper(server)}_HEADER_"


def webhook_secret(webhook: str) -> str:
    """`AGENT_WEBHOOK_<NAME>_SECRET` for a webhook name: the key its deliveries are signed with."""
    return f"{_WEBHOOK_PREFIX}{_upper(webhook)}_SECRET"


def http_header(function: str, header: str) -> str:
    """`AGENT_HTTP_<FUNCTION>_HEADER_<HEADER>_<digest>`: the value of one header of an http function."""
    digest = hashlib.sha256(f"{function}\0{header}".encode()).hexdigest()[:8].upper()
    return f"{_HTTP_PREFIX}{_upper(function)}_HEADER_{_upper(header)}_{digest}"


def is_secret(variable: str) -> bool:
    """Whether an environment variable carries a Secret value handed over by this contract."""
    return variable in (AI_API_KEY, REPLICA_TOKEN) or (
        variable.startswith(_CHANNEL_PREFIX) and variable.endswith("_URL")
    ) or (variable.startswith(_MCP_PREFIX) and "_HEADER_" in variable) or (
        variable.startswith(_WEBHOOK_PREFIX) and variable.endswith("_SECRET")) or (
        variable.startswith(_HTTP_PREFIX) and "_HEADER_" in variable)
