"""Bring-your-own AI: one `complete()` over OpenAI-compatible Chat Completions, Anthropic
Messages, and the offline `echo` engine.

The loop speaks one neutral transcript (`Message`, `ToolCall`); each provider translates it to
its wire format through the official SDK and translates the answer back. Errors become a
`ProviderError` carrying the provider's own message and a kind (`auth`, `rate_limit`,
`timeout`, `server`, `bad_request`, `connection`, `malformed_tool_call`). Retrying is the SDKs'
job: both retry 408/409/429/5xx, connection errors and timeouts with exponential back-off
(honouring `retry-after`) up to `max_retries`, and never retry a 401.

The echo engine (no network, deterministic) replies `echo: <last user text>` followed by the
memory it was given, `[1 earlier turn of this conversation; you last said: "..."]` (or `[no
earlier turns of this conversation]`), so anyone can see that a pinned follow-up keeps context
and an unpinned one on another replica does not. A user message may script tool calls for
demos and benchmarks: every line `/call <tool> <json-arguments>` becomes a tool call on the
model's first answer to that message; once the results are back it answers with them, e.g.
`/call state_get {"key": "greeting"}`.
"""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, Protocol

# Output tokens asked for per model call when the run's token budget allows more.
DEFAULT_MAX_OUTPUT_TOKENS = 4096
# The echo engine quotes the last remembered message up to this length: enough to recognise it.
ECHO_QUOTE_CHARS = 80


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # role == "tool": the call this result answers
    is_error: bool = False  # role == "tool": the tool failed


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...]
    input_tokens: int
    output_tokens: int


class ProviderError(Exception):
    """A model call failed; `str()` is the readable message recorded in the run history."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class Provider(Protocol):
    name: str

    async def complete(self, system: str | None, messages: list[Message], tools: list[ToolSpec],
                       max_output_tokens: int) -> Completion: ...


@dataclass(frozen=True)
class Settings:
    provider: Literal["openai", "anthropic", "echo"]
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_seconds: float = 60.0
    max_retries: int = 2


def build(settings: Settings) -> Provider:
    if settings.provider == "openai":
        return OpenAIProvider(settings)
    if settings.provider == "anthropic":
        return AnthropicProvider(settings)
    return EchoProvider()


def _sdk(name: str) -> ModuleType:
    """The provider's SDK, imported on first use: a replica loads only the one it talks to
    (an echo or schedule-only replica loads neither, which keeps its memory small)."""
    return importlib.import_module(name)


def _describe(provider: str, sdk: ModuleType, error: Exception) -> ProviderError:
    """The SDK's exception as a ProviderError with the provider's own words (both SDKs
    name their exception classes alike)."""
    status = getattr(error, "status_code", None)
    if isinstance(error, sdk.APITimeoutError):
        return ProviderError("timeout", f"{provider}: request timed out (after retries): {error}")
    if isinstance(error, sdk.APIConnectionError):
        return ProviderError("connection", f"{provider}: cannot connect: {error}")
    if isinstance(error, sdk.AuthenticationError):
        kind = "auth"
    elif isinstance(error, sdk.RateLimitError):
        kind = "rate_limit"
    elif status is not None and status >= 500:
        kind = "server"
    else:
        kind = "bad_request"
    detail = _provider_message(error)
    what = {"auth": "authentication failed (check the API key Secret)",
            "rate_limit": "rate limited (after retries)",
            "server": "server error (after retries)",
            "bad_request": "request refused"}[kind]
    return ProviderError(kind, f"{provider}: {what}: HTTP {status}: {detail}", status)


def _provider_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(error, "message", None) or error)


def _arguments(provider: str, name: str, raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError) as error:
        raise ProviderError("malformed_tool_call",
                            f"{provider}: malformed tool call {name!r}: arguments are not JSON "
                            f"({error}): {str(raw)[:200]}") from error
    if not isinstance(parsed, dict):
        raise ProviderError("malformed_tool_call",
                            f"{provider}: malformed tool call {name!r}: arguments must be a JSON "
                            f"object, got {type(parsed).__name__}")
    return parsed


class OpenAIProvider:
    """Any OpenAI-compatible Chat Completions endpoint (OpenAI, OpenRouter, Ollama, vLLM, …)."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self._model = settings.model
        # Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
        self._sdk = _sdk("openai")
        self._client = self._sdk.AsyncOpenAI(
            api_key=settings.api_key or "no-key", base_url=settings.base_url or None,
            timeout=settings.timeout_seconds, max_retries=settings.max_retries,
        )

    async def complete(self, system: str | None, messages: list[Message], tools: list[ToolSpec],
                       max_output_tokens: int) -> Completion:
        wire: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for message in messages:
            if message.role == "tool":
                wire.append({"role": "tool", "tool_call_id": message.tool_call_id,
                             "content": message.text})
            elif message.role == "assistant" and message.tool_calls:
                wire.append({"role": "assistant", "content": message.text or None,
                             "tool_calls": [
                                 {"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                 for c in message.tool_calls]})
            else:
                wire.append({"role": message.role, "content": message.text})
        request: dict[str, Any] = {"model": self._model, "messages": wire,
                                   "max_tokens": max_output_tokens}
        if tools:
            request["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in tools]
        try:
            response = await self._client.chat.completions.create(**request)
        except self._sdk.APIError as error:
            raise _describe(self.name, self._sdk, error) from error
        if not response.choices:
            raise ProviderError("bad_response", f"{self.name}: the response has no choices")
        answer = response.choices[0].message
        calls = tuple(
            ToolCall(call.id or uuid.uuid4().hex, call.function.name,
                     _arguments(self.name, call.function.name, call.function.arguments))
            for call in (answer.tool_calls or [])
        )
        usage = response.usage
        return Completion(answer.content or "", calls,
                          usage.prompt_tokens if usage else 0,
                          usage.completion_tokens if usage else 0)


class AnthropicProvider:
    """Anthropic Messages."""

    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        self._model = settings.model
        self._sdk = _sdk("anthropic")
        self._client = self._sdk.AsyncAnthropic(
            api_key=settings.api_key, base_url=settings.base_url or None,
            timeout=settings.timeout_seconds, max_retries=settings.max_retries,
        )

    async def complete(self, system: str | None, messages: list[Message], tools: list[ToolSpec],
                       max_output_tokens: int) -> Completion:
        wire: list[dict[str, Any]] = []
        for message in messages:
            if message.role == "tool":
                block = {"type": "tool_result", "tool_use_id": message.tool_call_id,
                         "content": message.text, "is_error": message.is_error}
                # Results of one turn's calls go back together in one user message.
                if wire and wire[-1]["role"] == "user" and isinstance(wire[-1]["content"], list):
                    wire[-1]["content"].append(block)
                else:
                    wire.append({"role": "user", "content": [block]})
            elif message.role == "assistant" and message.tool_calls:
                blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
                blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                           for c in message.tool_calls]
                wire.append({"role": "assistant", "content": blocks})
            else:
                wire.append({"role": message.role, "content": message.text})
        request: dict[str, Any] = {"model": self._model, "messages": wire,
                                   "max_tokens": max_output_tokens}
        if system:
            request["system"] = system
        if tools:
            request["tools"] = [{"name": t.name, "description": t.description,
                                 "input_schema": t.parameters} for t in tools]
        try:
            response = await self._client.messages.create(**request)
        except self._sdk.APIError as error:
            raise _describe(self.name, self._sdk, error) from error
        text = "".join(block.text for block in response.content if block.type == "text")
        calls = tuple(ToolCall(block.id, block.name, _arguments(self.name, block.name, block.input))
                      for block in response.content if block.type == "tool_use")
        return Completion(text, calls, response.usage.input_tokens, response.usage.output_tokens)


def estimate_tokens(text: str) -> int:
    """About four characters per token: good enough for budgets without a tokenizer."""
    return len(text) // 4 + 1


class EchoProvider:
    """Offline and deterministic; see the module docstring for the `/call` lines."""

    name = "echo"

    async def complete(self, system: str | None, messages: list[Message], tools: list[ToolSpec],
                       max_output_tokens: int) -> Completion:
        prompt_tokens = sum(estimate_tokens(m.text) for m in messages) + estimate_tokens(system or "")
        last = messages[-1] if messages else Message("user", "")
        if last.role == "user":
            calls = tuple(self._scripted_calls(last.text))
            if calls:
                return Completion("", calls, prompt_tokens, 8 * len(calls))
            text = f"echo: {last.text} {self._memory(messages[:-1])}"
        else:
            results = []
            for message in reversed(messages):
                if message.role != "tool":
                    break
                results.insert(0, message.text)
            text = "echo: tool results: " + " | ".join(results)
        return Completion(text, (), prompt_tokens, estimate_tokens(text))

    @staticmethod
    def _memory(earlier: list[Message]) -> str:
        """What this turn was given of the conversation so far: its earlier user turns (the
        runtime's memory keeps user messages and final replies), and the newest of them."""
        said = [m.text for m in earlier if m.role == "user"]
        if not said:
            return "[no earlier turns of this conversation]"
        last = said[-1] if len(said[-1]) <= ECHO_QUOTE_CHARS else said[-1][:ECHO_QUOTE_CHARS - 1] + "…"
        turns = "1 earlier turn" if len(said) == 1 else f"{len(said)} earlier turns"
        return f'[{turns} of this conversation; you last said: "{last}"]'

    @staticmethod
    def _scripted_calls(text: str) -> list[ToolCall]:
        calls = []
        for index, line in enumerate(text.splitlines()):
            line = line.strip()
            if not line.startswith("/call "):
                continue
            name, _, raw = line.removeprefix("/call ").strip().partition(" ")
            calls.append(ToolCall(f"echo-{index}", name, _arguments("echo", name, raw.strip() or "{}")))
        return calls
