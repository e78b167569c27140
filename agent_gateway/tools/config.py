"""Configuration tools: functions, AI engine, webhooks, channels, MCP servers, limits.

Each is one spec edit (agent_gateway.spec_edit) applied with a conflict check; the runtime
picks most of them up live, without restarting replicas. An edit that newly references a Secret
needs the caller's own `get` on it (`common.update_spec`); whether the Secret exists is never
looked up, so the answer reveals nothing about Secrets the caller cannot read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from agent_api import models
from agent_gateway import deps, errors, results, spec_edit
from agent_gateway.tools import common

SecretName = Annotated[str, Field(min_length=1, max_length=253, description="a Secret in the agent's namespace")]
SecretKey = Annotated[str, Field(min_length=1, max_length=253)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]


def _limit(field: str) -> Any:
    """The Limits field's own bounds, so the tool's schema carries the API's limits."""
    return Annotated[int, *models.Limits.model_fields[field].metadata] | None


MaxConcurrentRuns = _limit("max_concurrent_runs")
RunTimeoutSeconds = _limit("run_timeout_seconds")
MaxIterations = _limit("max_iterations")
MaxTokens = _limit("max_tokens")
MaxWallClockSeconds = _limit("max_wall_clock_seconds")
MaxFunctionCalls = _limit("max_function_calls")
MemoryMaxTokens = _limit("memory_max_tokens")

LIMIT_FIELDS = {"max_concurrent_runs": "maxConcurrentRuns", "run_timeout_seconds": "runTimeoutSeconds",
                "max_iterations": "maxIterations", "max_tokens": "maxTokens",
                "max_wall_clock_seconds": "maxWallClockSeconds", "max_function_calls": "maxFunctionCalls",
                "memory_max_tokens": "memoryMaxTokens"}


class McpServerInput(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    url: Url
    headers_secret_name: SecretName | None = None


def register(server: MCPServer, d: deps.Deps) -> None:
    async def edit(namespace: str | None, agent: str, change: Any, message: str) -> results.Changed:
        """Authorize (the change, then each Secret it newly references) and apply it."""
        caller, ns = await common.guard(d, namespace, "patch")
        obj = await common.update_spec(d, caller, ns, agent, change)
        return common.changed(obj, message)

    @server.tool(annotations=common.ADD)
    async def add_function(
        agent_name: common.AgentName,
        function_name: common.FunctionName,
        python_entrypoint: Annotated[str | None, Field(max_length=256, description="module:callable")] = None,
        http_url: Url | None = None,
        http_method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST",
        prompt_template: Annotated[str | None, Field(max_length=models.MAX_TEXT)] = None,
        prompt_tools: Annotated[list[str] | None, Field(max_length=models.MAX_PROMPT_TOOLS)] = None,
        timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 30,
        namespace: common.Namespace = None,
    ) -> results.Changed:
        """Define a function the agent can run (from schedules, webhooks, chat or prompts): exactly
        one of python_entrypoint (e.g. agent_runtime.builtins:echo), http_url, or prompt_template."""
        function: dict[str, Any] = {"name": function_name}
        if python_entrypoint is not None:
            function["python"] = {"entrypoint": python_entrypoint}
        if http_url is not None:
            function["http"] = {"url": http_url, "method": http_method, "timeoutSeconds": timeout_seconds}
        if prompt_template is not None:
            function["prompt"] = {"template": prompt_template, "tools": prompt_tools or []}
        return await edit(namespace, agent_name,
                          lambda spec: spec_edit.add_item(spec, "function", function, agent_name),
                          f'function "{function_name}" added')

    @server.tool(annotations=common.REMOVE)
    async def remove_function(agent_name: common.AgentName, function_name: common.FunctionName,
                              namespace: common.Namespace = None) -> results.Changed:
        """Remove a function; refused while a schedule, webhook or prompt still uses it."""
        return await edit(namespace, agent_name,
                          lambda spec: spec_edit.remove_function(spec, function_name, agent_name),
                          f'function "{function_name}" removed')

    @server.tool(annotations=common.REPLACE)
    async def configure_agent_ai(
        agent_name: common.AgentName,
        provider: Literal["openai", "anthropic", "echo"],
        model: Annotated[str | None, Field(max_length=256)] = None,
        base_url: Url | None = None,
        api_key_secret_name: SecretName | None = None,
        api_key_secret_key: SecretKey = "api-key",
        system_prompt: Annotated[str | None, Field(max_length=models.MAX_TEXT)] = None,
        namespace: common.Namespace = None,
    ) -> results.Changed:
        """Set the AI engine every replica talks to (replaces the previous settings). The API key is
        only referenced, from a Secret; echo needs neither model nor key."""
        ai: dict[str, Any] = {"provider": provider}
        for key, value in (("model", model), ("baseURL", base_url), ("systemPrompt", system_prompt)):
            if value is not None:
                ai[key] = value
        if api_key_secret_name is not None:
            ai["apiKeySecretRef"] = {"name": api_key_secret_name, "key": api_key_secret_key}
        return await edit(namespace, agent_name, lambda spec: spec_edit.replace_field(spec, "ai", ai, agent_name),
                          f"AI engine set to {provider}" + (f" ({model})" if model else ""))

    @server.tool(annotations=common.ADD)
    async def add_webhook(
        agent_name: common.AgentName,
        webhook_name: common.ItemName,
        path: Annotated[str, Field(min_length=1, max_length=256, description="e.g. /github")],
        function_name: common.FunctionName,
        secret_name: SecretName,
        secret_key: SecretKey = "secret",
        synchronous: bool = False,
        namespace: common.Namespace = None,
    ) -> results.Changed:
        """Expose a signed webhook at POST /hooks/<namespace>/<agent><path> on the gateway that runs a
        function on one of the replicas. Senders sign each delivery with HMAC-SHA256 using the Secret's
        key: headers X-Agent-Timestamp (unix seconds), X-Agent-Delivery (a new id per delivery) and
        X-Agent-Signature: v1=<hex HMAC(key, "v1:<timestamp>:<delivery>:/hooks/<namespace>/<agent><path>:"
        + body)>; a delivery is accepted within 300 s of its timestamp, once. The caller needs get on
        the Secret. synchronous: answer with the run's result."""
        hook = {"name": webhook_name, "path": path, "function": function_name,
                "secretRef": {"name": secret_name, "key": secret_key}, "synchronous": synchronous}
        return await edit(namespace, agent_name, lambda spec: spec_edit.add_item(spec, "webhook", hook, agent_name),
                          f'webhook "{webhook_name}" added at /hooks/{namespace or d.settings.default_namespace}'
                          f"/{agent_name}{path}")

    @server.tool(annotations=common.REMOVE)
    async def remove_webhook(agent_name: common.AgentName, webhook_name: common.ItemName,
                             namespace: common.Namespace = None) -> results.Changed:
        """Remove a webhook; its URL answers 404 from then on."""
        return await edit(namespace, agent_name,
                          lambda spec: spec_edit.remove_item(spec, "webhook", webhook_name, agent_name),
                          f'webhook "{webhook_name}" removed')

    @server.tool(annotations=common.ADD)
    async def add_channel(
        agent_name: common.AgentName,
        channel_name: common.ItemName,
        type: Literal["slack", "discord", "webhook"],
        url_secret_name: SecretName,
        url_secret_key: SecretKey = "url",
        namespace: common.Namespace = None,
    ) -> results.Changed:
        """Add a channel the agent can post to; its URL is a credential, so it comes from a Secret."""
        channel = {"name": channel_name, "type": type,
                   "urlSecretRef": {"name": url_secret_name, "key": url_secret_key}}
        return await edit(namespace, agent_name,
                          lambda spec: spec_edit.add_item(spec, "channel", channel, agent_name),
                          f'channel "{channel_name}" added')

    @server.tool(annotations=common.REMOVE)
    async def remove_channel(agent_name: common.AgentName, channel_name: common.ItemName,
                             namespace: common.Namespace = None) -> results.Changed:
        """Remove a channel."""
        return await edit(namespace, agent_name,
                          lambda spec: spec_edit.remove_item(spec, "channel", channel_name, agent_name),
                          f'channel "{channel_name}" removed')

    @server.tool(annotations=common.REPLACE)
    async def configure_mcp_servers(
        agent_name: common.AgentName,
        servers: Annotated[list[McpServerInput], Field(max_length=models.MAX_MCP_SERVERS)],
        namespace: common.Namespace = None,
    ) -> results.Changed:
        """Set the MCP servers whose tools the agent may use (replaces the list; [] removes all).
        Headers (e.g. Authorization) come from a Secret, every key becoming one header."""
        entries = []
        for s in servers:
            entry: dict[str, Any] = {"name": s.name, "url": s.url}
            if s.headers_secret_name:
                entry["headersSecretRef"] = {"name": s.headers_secret_name}
            entries.append(entry)
        return await edit(namespace, agent_name,
                          lambda spec: spec_edit.replace_field(spec, "mcpServers", entries or None, agent_name),
                          f"{len(entries)} MCP server(s) configured")

    @server.tool(annotations=common.REPLACE)
    async def configure_orchestration_limits(
        agent_name: common.AgentName,
        max_concurrent_runs: MaxConcurrentRuns = None,
        run_timeout_seconds: RunTimeoutSeconds = None,
        max_iterations: MaxIterations = None,
        max_tokens: MaxTokens = None,
        max_wall_clock_seconds: MaxWallClockSeconds = None,
        max_function_calls: MaxFunctionCalls = None,
        memory_max_tokens: MemoryMaxTokens = None,
        namespace: common.Namespace = None,
    ) -> results.Changed:
        """Change the limits every replica works under; only the given ones change."""
        given = {LIMIT_FIELDS[k]: v for k, v in {
            "max_concurrent_runs": max_concurrent_runs, "run_timeout_seconds": run_timeout_seconds,
            "max_iterations": max_iterations, "max_tokens": max_tokens,
            "max_wall_clock_seconds": max_wall_clock_seconds, "max_function_calls": max_function_calls,
            "memory_max_tokens": memory_max_tokens}.items() if v is not None}
        if not given:
            raise errors.GatewayError("configure_orchestration_limits: give at least one limit to change",
                                      code="invalid")
        return await edit(
            namespace, agent_name,
            lambda spec: spec_edit.replace_field(spec, "limits", {**(spec.get("limits") or {}), **given}, agent_name),
            "limits set: " + ", ".join(f"{k}={v}" for k, v in given.items()))
