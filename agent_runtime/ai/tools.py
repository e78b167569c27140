"""The tools a model may call in one agent loop, and running them.

A `Toolbox` maps tool names to handlers. Every failure of a tool (a refused state write, an
unknown channel, a failing function, an MCP error) goes back to the model as an error result it
can read and react to; it does not abort the run. What is offered:

- `state_get`, `state_set`, `state_list`: the replica's state (`scope: "replica"`, default) or
  the cluster-shared state (`scope: "cluster"`), with the same size limits as everywhere;
  `state_set` refuses the reserved keys (`RESERVED_STATE_KEYS`) unless the spec allows it;
- `send_to_channel` when the spec has channels;
- `fn_<function>`: the functions the prompt lists in `prompt.tools` (dots become `_`);
- `<server>__<tool>`: the tools of each configured MCP server.

Tool names are made to fit every provider's rule (`^[A-Za-z0-9_-]{1,64}$`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent_runtime import state
from agent_runtime.ai import providers

RESULT_MAX_CHARS = 16_000

# Replica state key whose non-empty string replaces spec.ai.systemPrompt (A/B tests).
SYSTEM_PROMPT_KEY = "system_prompt"
# State keys the runtime itself acts on, so the model's own tools may not write them: text the
# model reads (a webhook payload, an MCP answer, a chat message) could otherwise make it persist
# instructions into every later conversation. Python functions and the gateway's
# set_agent_state still write them; spec.ai.allowModelToSetSystemPrompt lets the model too.
RESERVED_STATE_KEYS = frozenset({SYSTEM_PROMPT_KEY})

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool = False


class ToolError(Exception):
    """A tool refused or failed; the message goes back to the model."""


def tool_name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", raw)
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    return name


def render(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > RESULT_MAX_CHARS:
        text = text[:RESULT_MAX_CHARS] + f"… [truncated, {len(text)} characters in all]"
    return text


class Toolbox:
    def __init__(self) -> None:
        self._tools: dict[str, tuple[providers.ToolSpec, Handler]] = {}

    def add(self, name: str, description: str, parameters: dict[str, Any], handler: Handler) -> str:
        safe = tool_name(name)
        if safe in self._tools:
            raise ValueError(f"two tools are named {safe!r}")
        self._tools[safe] = (providers.ToolSpec(safe, description, parameters), handler)
        return safe

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[providers.ToolSpec]:
        return [spec for spec, _ in self._tools.values()]

    async def call(self, call: providers.ToolCall) -> ToolResult:
        entry = self._tools.get(call.name)
        if entry is None:
            return ToolResult(f"error: there is no tool named {call.name!r}; available: "
                              f"{', '.join(self._tools) or 'none'}", is_error=True)
        try:
            result = await entry[1](call.arguments)
        except (ToolError, state.StateError) as error:
            return ToolResult(f"error: {error}", is_error=True)
        except Exception as error:  # any tool may fail; the model is told, the run goes on
            return ToolResult(f"error: {type(error).__name__}: {error}", is_error=True)
        if isinstance(result, ToolResult):
            return result
        return ToolResult(render(result))


_SCOPE = {"type": "string", "enum": ["replica", "cluster"],
          "description": "replica: this replica's own state (default); cluster: shared by all replicas"}


def _shared(arguments: dict[str, Any]) -> bool:
    scope = arguments.get("scope", "replica")
    if scope not in ("replica", "cluster"):
        raise ToolError(f"scope must be 'replica' or 'cluster', not {scope!r}")
    return scope == "cluster"


def _key(arguments: dict[str, Any]) -> str:
    key = arguments.get("key")
    if not isinstance(key, str) or not key:
        raise ToolError("key must be a non-empty string")
    return key


def add_state_tools(toolbox: Toolbox, store: state.StateStore,
                    writable_reserved: frozenset[str] = frozenset()) -> None:
    """The state tools; `writable_reserved`: the reserved keys the spec lets the model write."""
    async def get(arguments: dict[str, Any]) -> Any:
        return {"key": _key(arguments), "value": await store.get(_key(arguments), _shared(arguments))}

    async def put(arguments: dict[str, Any]) -> Any:
        if "value" not in arguments:
            raise ToolError("value is required")
        if _key(arguments) in RESERVED_STATE_KEYS - writable_reserved:
            raise ToolError(
                f"state key {_key(arguments)!r} is reserved: it replaces this agent's system prompt, so the "
                "model may not write it (its owner may, through the gateway's set_agent_state; "
                "spec.ai.allowModelToSetSystemPrompt: true lets the model)")
        await store.put(_key(arguments), arguments["value"], _shared(arguments))
        return {"ok": True, "key": _key(arguments)}

    async def items(arguments: dict[str, Any]) -> Any:
        return await store.items(_shared(arguments))

    toolbox.add("state_get", "Read one key of the agent's state (null when absent).",
                {"type": "object", "properties": {"key": {"type": "string"}, "scope": _SCOPE},
                 "required": ["key"]}, get)
    toolbox.add("state_set", "Write one key of the agent's state; the value is any JSON value.",
                {"type": "object", "properties": {"key": {"type": "string"}, "value": {},
                                                  "scope": _SCOPE},
                 "required": ["key", "value"]}, put)
    toolbox.add("state_list", "List every key and value of the agent's state.",
                {"type": "object", "properties": {"scope": _SCOPE}}, items)


def add_channel_tool(toolbox: Toolbox, channels: list[str],
                     send: Callable[[str, str], Awaitable[Any]]) -> None:
    if not channels:
        return

    async def handler(arguments: dict[str, Any]) -> Any:
        channel, text = arguments.get("channel"), arguments.get("text")
        if channel not in channels:
            raise ToolError(f"unknown channel {channel!r}; channels: {', '.join(channels)}")
        if not isinstance(text, str) or not text:
            raise ToolError("text must be a non-empty string")
        return await send(channel, text)

    toolbox.add("send_to_channel", "Post a message to one of the agent's channels.",
                {"type": "object",
                 "properties": {"channel": {"type": "string", "enum": channels},
                                "text": {"type": "string"}},
                 "required": ["channel", "text"]}, handler)


def add_function_tools(toolbox: Toolbox, names: list[str],
                       call_function: Callable[[str, dict[str, Any]], Awaitable[Any]]) -> None:
    for name in names:
        async def handler(arguments: dict[str, Any], function: str = name) -> Any:
            payload = arguments.get("payload", {})
            if not isinstance(payload, dict):
                raise ToolError("payload must be a JSON object")
            return await call_function(function, payload)

        toolbox.add(f"fn_{name}", f"Run the agent's function {name!r} with a JSON payload.",
                    {"type": "object", "properties": {"payload": {"type": "object"}}}, handler)
