"""The Secret values this replica was given, read from its environment by the names in
`agent_api.secret_env`, and registered for redaction as they are read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_api import secret_env
from agent_runtime.ai import redaction


@dataclass(frozen=True)
class Secrets:
    api_key: str | None = field(default=None, repr=False)
    channel_urls: dict[str, str] = field(default_factory=dict, repr=False)
    mcp_headers: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)


def read(env: Mapping[str, str], channels: list[str], mcp_servers: list[str]) -> Secrets:
    redaction.register_environment(env)
    urls = {name: env[secret_env.channel_url(name)] for name in channels
            if env.get(secret_env.channel_url(name))}
    headers = {}
    for server in mcp_servers:
        prefix = secret_env.mcp_header_prefix(server)
        headers[server] = {variable.removeprefix(prefix): value
                           for variable, value in env.items() if variable.startswith(prefix)}
    return Secrets(env.get(secret_env.AI_API_KEY) or None, urls, headers)
