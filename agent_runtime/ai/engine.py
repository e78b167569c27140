"""The AI engine of one replica: runs `prompt` functions and chat turns by putting together
the provider, the system prompt, the toolbox, the loop and (for chat) the memory it is given.

The spec is read on every call, so an edited `spec.ai`, new channels or MCP servers apply
without a restart; providers and MCP tool caches are kept while their settings stay the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from agent_api import models
from agent_runtime import spec, state
from agent_runtime.ai import (
    channels,
    env_secrets,
    loop,
    mcp_tools,
    memory,
    providers,
    redaction,
    template,
    tools,
)

log = logging.getLogger(__name__)

MAX_PROMPT_DEPTH = 3  # prompt functions calling prompt functions as tools
REPLY_SUMMARY_CHARS = 1500

CallFunction = Callable[[str, dict[str, Any], int], Awaitable[Any]]


class EngineNotConfigured(Exception):
    """The spec has no `ai` section."""


@dataclass(frozen=True)
class Identity:
    namespace: str
    cluster: str
    replica: str


def summary(result: loop.LoopResult) -> dict[str, Any]:
    """The bounded, scrubbed record of a loop kept in `runs.output` (stop_reason included)."""
    return redaction.scrub_json({
        "stop_reason": result.stop_reason,
        "reply": result.reply[:REPLY_SUMMARY_CHARS],
        "iterations": result.iterations,
        "tokens": {"input": result.input_tokens, "output": result.output_tokens},
        "function_calls": result.function_calls,
        "tools_called": result.tools_called[:50],
    })


class Engine:
    def __init__(self, pool: asyncpg.Pool, identity: Identity,
                 session: Callable[[], aiohttp.ClientSession],
                 env: Mapping[str, str] | None = None,
                 channel_attempts: int = 4, channel_backoff_seconds: float = 0.5,
                 counted: Callable[[providers.Provider], providers.Provider] = lambda provider: provider) -> None:
        self._pool = pool
        self._counted = counted  # wraps each provider built, so its calls are counted
        self._identity = identity
        self._session = session
        self._env = dict(os.environ if env is None else env)
        redaction.register_environment(self._env)
        self._timeout = float(self._env.get("AGENT_AI_TIMEOUT_SECONDS", "60"))
        self._max_retries = int(self._env.get("AGENT_AI_MAX_RETRIES", "2"))
        self._channel_attempts = channel_attempts
        self._channel_backoff = channel_backoff_seconds
        self._provider: tuple[providers.Settings, providers.Provider] | None = None
        self._mcp: dict[tuple[str, str], mcp_tools.McpServerTools] = {}
        self._read_secrets: tuple[tuple[tuple[str, ...], tuple[str, ...]], env_secrets.Secrets] | None = None

    # -- pieces, rebuilt only when the spec changes them ------------------------------------

    def _secrets(self, current: spec.RuntimeSpec) -> env_secrets.Secrets:
        # The environment is this engine's own copy and never changes, so the secrets of a
        # set of channel and MCP server names are read once (a chat turn asked three times).
        names = (tuple(current.channels), tuple(server.name for server in current.mcp_servers))
        if self._read_secrets is None or self._read_secrets[0] != names:
            self._read_secrets = (names, env_secrets.read(self._env, list(names[0]), list(names[1])))
        return self._read_secrets[1]

    def provider(self, current: spec.RuntimeSpec) -> providers.Provider:
        if current.ai is None:
            raise EngineNotConfigured("this agent has no AI engine: spec.ai is not set")
        settings = providers.Settings(
            current.ai.provider, current.ai.model, current.ai.base_url,
            self._secrets(current).api_key, self._timeout, self._max_retries)
        if self._provider is None or self._provider[0] != settings:
            self._provider = (settings, self._counted(providers.build(settings)))
        return self._provider[1]

    def _mcp_servers(self, current: spec.RuntimeSpec) -> list[mcp_tools.McpServerTools]:
        headers = self._secrets(current).mcp_headers
        servers = []
        for server in current.mcp_servers:
            key = (server.name, server.url)
            wanted = headers.get(server.name, {})
            known = self._mcp.get(key)
            if known is None or known.headers != wanted:
                known = self._mcp[key] = mcp_tools.McpServerTools(server.name, server.url, wanted)
            servers.append(known)
        return servers

    def _sender(self, current: spec.RuntimeSpec) -> channels.ChannelSender:
        return channels.ChannelSender(
            self._pool, self._session(), {c.name: c.type for c in current.channels.values()},
            self._secrets(current).channel_urls, attempts=self._channel_attempts,
            backoff_seconds=self._channel_backoff)

    async def _toolbox(self, current: spec.RuntimeSpec, store: state.StateStore,
                       run_id: int | None, function_tools: list[str],
                       call_function: CallFunction | None, depth: int) -> tuple[tools.Toolbox, list[str]]:
        toolbox = tools.Toolbox()
        allowed = current.ai is not None and current.ai.allow_model_to_set_system_prompt
        tools.add_state_tools(toolbox, store, frozenset({tools.SYSTEM_PROMPT_KEY}) if allowed else frozenset())
        sender = self._sender(current)
        where = channels.Where(self._identity.namespace, self._identity.cluster,
                               self._identity.replica, run_id)

        async def send(channel: str, text: str) -> Any:
            try:
                delivery = await sender.send(channel, text, where)
            except channels.ChannelError as error:
                raise tools.ToolError(str(error)) from error
            return {"delivered": True, "channel": channel, "attempts": delivery.attempts}

        tools.add_channel_tool(toolbox, sorted(current.channels), send)
        if call_function is not None and function_tools:
            async def call(name: str, payload: dict[str, Any]) -> Any:
                return await call_function(name, payload, depth + 1)

            tools.add_function_tools(toolbox, function_tools, call)
        errors = await mcp_tools.add_mcp_tools(toolbox, self._mcp_servers(current))
        for error in errors:
            log.warning("MCP tools left out of this run: %s", redaction.scrub(error))
        return toolbox, errors

    async def _system_prompt(self, current: spec.RuntimeSpec, store: state.StateStore) -> str | None:
        return system_prompt(current, await store.get(tools.SYSTEM_PROMPT_KEY))

    @staticmethod
    def limits(current: spec.RuntimeSpec) -> loop.Limits:
        return loop.Limits(current.limits.max_iterations, current.limits.max_tokens,
                           current.limits.max_wall_clock_seconds, current.limits.max_function_calls)

    # -- the two ways in --------------------------------------------------------------------

    async def run_prompt(self, current: spec.RuntimeSpec, function: models.Function,
                         payload: dict[str, Any], fields: dict[str, Any], store: state.StateStore,
                         run_id: int | None = None, call_function: CallFunction | None = None,
                         depth: int = 0) -> loop.LoopResult:
        """One `prompt` function run; errors come back as stop reason `error`, scrubbed."""
        try:
            if function.prompt is None:
                raise EngineNotConfigured(f"function {function.name!r} is not a prompt function")
            if depth >= MAX_PROMPT_DEPTH:
                raise EngineNotConfigured(f"prompt functions nested deeper than {MAX_PROMPT_DEPTH}")
            provider = self.provider(current)
            prompt = template.fill(function.prompt.template, payload, fields)
            toolbox, mcp_errors = await self._toolbox(current, store, run_id,
                                                      function.prompt.tools, call_function, depth)
            system = await self._system_prompt(current, store)
        except (EngineNotConfigured, template.TemplateError, state.StateError) as error:
            return loop.LoopResult(stop_reason="error", error=redaction.scrub(str(error)))
        result = await loop.run(provider, system, [providers.Message("user", prompt)], toolbox,
                                self.limits(current))
        return _scrubbed(result, mcp_errors)

    async def chat(self, current: spec.RuntimeSpec, message: str, turn: memory.Turn,
                   store: state.StateStore) -> loop.LoopResult:
        """One chat turn, given the memory and system prompt override `turn` read for it (the
        runner stores the exchange when the run is finished: memory.Memory)."""
        provider = self.provider(current)
        toolbox, mcp_errors = await self._toolbox(current, store, turn.run_id, [], None, 0)
        result = await loop.run(provider, system_prompt(current, turn.system_prompt),
                                [*turn.history, providers.Message("user", message)],
                                toolbox, self.limits(current))
        return _scrubbed(result, mcp_errors)


def system_prompt(current: spec.RuntimeSpec, override: Any) -> str | None:
    """The replica's own system prompt (a non-empty string in its state), else the spec's."""
    if isinstance(override, str) and override.strip():
        return override
    return current.ai.system_prompt if current.ai else None


def _scrubbed(result: loop.LoopResult, mcp_errors: list[str]) -> loop.LoopResult:
    result.reply = redaction.scrub(result.reply)
    if result.error is not None:
        result.error = redaction.scrub(result.error)
    if mcp_errors and result.stop_reason == "error" and result.error:
        result.error += " (MCP: " + "; ".join(redaction.scrub(e) for e in mcp_errors) + ")"
    return result
