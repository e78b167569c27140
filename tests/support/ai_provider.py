"""A scripted AI provider on 127.0.0.1 speaking OpenAI Chat Completions (`/v1/chat/completions`)
and Anthropic Messages (`/v1/messages`), so the official SDKs are exercised over HTTP.

Replies come from `script` (first in, first out), then from `responder(request)` when set. A
reply is text, tool calls (arguments as a dict, or a raw string to make them malformed), an
HTTP error with a message, a delay, and the usage it reports. With `expected_key` set, a
request with another key gets a 401 whose message quotes the key it was sent, as careless
servers do, so tests can prove the runtime scrubs it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from devcluster import ports


@dataclass
class Reply:
    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    status: int = 200
    error: str = "scripted error"
    delay: float = 0.0
    input_tokens: int = 10
    output_tokens: int = 5
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    api: str  # 'openai' | 'anthropic'
    body: dict[str, Any]
    headers: dict[str, str]

    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    def tool_results(self) -> int:
        """How many tool results the request carries (both wire formats)."""
        count = 0
        for message in self.messages():
            if message.get("role") == "tool":
                count += 1
            elif isinstance(message.get("content"), list):
                count += sum(1 for b in message["content"] if b.get("type") == "tool_result")
        return count

    def texts(self, role: str) -> list[str]:
        found = []
        for message in self.messages():
            if message.get("role") != role:
                continue
            content = message.get("content")
            if isinstance(content, str):
                found.append(content)
            elif isinstance(content, list):
                found += [b["text"] for b in content if b.get("type") == "text"]
        return found

    def system(self) -> str | None:
        if self.api == "anthropic":
            return self.body.get("system")
        first = self.messages()[0] if self.messages() else {}
        return first.get("content") if first.get("role") == "system" else None


class ScriptedProvider:
    def __init__(self, expected_key: str | None = None) -> None:
        self.expected_key = expected_key
        self.script: list[Reply] = []
        self.responder: Callable[[Request], Reply] | None = None
        self.requests: list[Request] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = ports.free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    async def start(self) -> ScriptedProvider:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _next(self, api: str, request: web.Request, key: str | None) -> Reply:
        recorded = Request(api, await request.json(), dict(request.headers))
        self.requests.append(recorded)
        if self.expected_key is not None and key != self.expected_key:
            return Reply(status=401, error=f"Incorrect API key provided: {key}")
        if self.script:
            reply = self.script.pop(0)
        elif self.responder is not None:
            reply = self.responder(recorded)
        else:
            reply = Reply(text="(script exhausted)")
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return reply

    async def _openai(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        reply = await self._next("openai", request, auth.removeprefix("Bearer ") or None)
        if reply.status != 200:
            kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(reply.status, "server_error")
            return web.json_response({"error": {"message": reply.error, "type": kind, "code": kind}},
                                     status=reply.status, headers=reply.headers)
        calls = [{"id": f"call_{next(self._ids)}", "type": "function",
                  "function": {"name": name,
                               "arguments": args if isinstance(args, str) else json.dumps(args)}}
                 for name, args in reply.tool_calls]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if calls:
            message["tool_calls"] = calls
        return web.json_response({
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": 0,
            "model": (await request.json()).get("model", "scripted"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                      "total_tokens": reply.input_tokens + reply.output_tokens},
        })

    async def _anthropic(self, request: web.Request) -> web.Response:
        # Anthropic keys travel as `x-api-key`; newer SDKs send `Authorization: Bearer`.
        key = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix(
            "Bearer ") or None
        reply = await self._next("anthropic", request, key)
        if reply.status != 200:
            kind = {401: "authentication_error", 429: "rate_limit_error"}.get(reply.status, "api_error")
            return web.json_response({"type": "error", "error": {"type": kind, "message": reply.error}},
                                     status=reply.status, headers=reply.headers)
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        for name, args in reply.tool_calls:
            # Anthropic sends tool input as an object; a string here is a malformed call.
            content.append({"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": name,
                            "input": args})
        return web.json_response({
            "id": f"msg_{next(self._ids)}", "type": "message", "role": "assistant",
            "model": (await request.json()).get("model", "scripted"), "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        })


def remembering(request: Request) -> Reply:
    """A model whose answer lists every user message it was sent, oldest first: shows what
    memory a chat turn was given."""
    return Reply(text="I remember: " + " | ".join(request.texts("user")))
