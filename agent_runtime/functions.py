"""Calling a function: `http` (POST a JSON body) or `python` (`module:callable`, sync or async).

Both receive the same fields; the idempotency key `<schedule>:<fire_time>` lets a function
drop the rare second execution of one fire (execution is at-least-once, see docs/runtime.md).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from agent_runtime import spec

OUTPUT_SUMMARY_CHARS = 2000


class FunctionError(Exception):
    """The function ran and failed; the message is recorded in the run history."""


@dataclass(frozen=True)
class RunContext:
    agent: str
    namespace: str
    replica: str
    function: str
    trigger: str
    schedule: str | None
    fire_time: str | None
    attempt: int
    idempotency_key: str
    payload: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # the replica's state at run start

    def body(self) -> dict[str, Any]:
        """The JSON body of an `http` call: every field but the state."""
        fields = asdict(self)
        del fields["state"]
        return fields


async def invoke(function: spec.FunctionSpec, context: RunContext,
                 session: aiohttp.ClientSession) -> Any:
    if function.http is not None:
        return await _invoke_http(function.http, context, session)
    if function.python is not None:
        return await _invoke_python(function.python, context)
    # `prompt` functions need the AI engine, state and channels: the Runner runs them
    # (agent_runtime.ai.engine), never this function.
    raise FunctionError(f"function {function.name!r} has no kind this runtime can run here")


async def _invoke_http(http: spec.HttpFunction, context: RunContext,
                       session: aiohttp.ClientSession) -> Any:
    timeout = aiohttp.ClientTimeout(total=http.timeout_seconds)
    last_error = ""
    for attempt in range(http.retries + 1):
        if attempt:
            await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
        try:
            async with session.post(http.url, json=context.body(), timeout=timeout,
                                    headers=http.headers) as response:
                text = await response.text()
                if response.status < 300:
                    return _decode(text)
                last_error = f"HTTP {response.status}: {text[:200]}"
                if response.status < 500 and response.status != 429:
                    break  # the caller's request is wrong; retrying will not fix it
        except (aiohttp.ClientError, TimeoutError) as error:
            last_error = f"{type(error).__name__}: {error}"
    raise FunctionError(f"POST {http.url} failed after {attempt + 1} attempt(s): {last_error}")


def _decode(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return text


async def _invoke_python(python: spec.PythonFunction, context: RunContext) -> Any:
    target = resolve(python.entrypoint)
    if inspect.iscoroutinefunction(target):
        return await target(context)
    # A sync function must not block the event loop (lease renewal runs there).
    result = await asyncio.to_thread(target, context)
    if inspect.isawaitable(result):
        result = await result
    return result


def resolve(entrypoint: str) -> Any:
    module_name, _, attribute = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FunctionError(f"cannot import {module_name!r}: {error}") from error
    target = getattr(module, attribute, None)
    if not callable(target):
        raise FunctionError(f"{entrypoint!r} is not a callable")
    return target


def summarize(result: Any) -> dict[str, Any] | None:
    """A bounded JSON summary of a function's result for the run history."""
    if result is None:
        return None
    try:
        text = json.dumps(result, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(result))
    if len(text) <= OUTPUT_SUMMARY_CHARS:
        return {"result": json.loads(text)}
    return {"truncated": True, "result": text[:OUTPUT_SUMMARY_CHARS]}
