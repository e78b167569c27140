"""Calling a function: `http` (a JSON body, with the function's method and headers) or
`python` (`module:callable`, sync or async).

Both receive the same fields, the replica's state included, so replicas that each watch their
own source through their own state can be http functions as well as python ones. An http body
carries the state whole up to `models.HTTP_STATE_MAX_BYTES`, or only the keys the function
lists (`http.stateKeys`). The idempotency key `<schedule>:<fire_time>` lets a function drop
the rare second execution of one fire (execution is at-least-once, see docs/runtime.md).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from agent_api import models, secret_env

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

    def fields(self) -> dict[str, Any]:
        """Every field but the state (a prompt's template reads these; its tools read the
        live state)."""
        fields = asdict(self)
        del fields["state"]
        return fields

    def body(self, http: models.HttpFunction) -> dict[str, Any]:
        """The JSON body of an `http` call: every field, with the state the function asks for
        (`stateKeys`; all of it when absent), refused past `models.HTTP_STATE_MAX_BYTES`."""
        fields = self.fields()
        fields["state"] = (self.state if http.state_keys is None
                           else {key: self.state[key] for key in http.state_keys if key in self.state})
        size = len(json.dumps(fields["state"]).encode())
        if size > models.HTTP_STATE_MAX_BYTES:
            raise FunctionError(
                f"the state sent to {self.function!r} is {size} bytes as JSON, over the "
                f"{models.HTTP_STATE_MAX_BYTES} bytes an http function's body carries; list the keys "
                f"the function needs in spec.functions[{self.function}].http.stateKeys (or fewer "
                f"of them), or keep large values elsewhere")
        return fields


async def invoke(function: models.Function, context: RunContext, session: aiohttp.ClientSession,
                 env: Mapping[str, str] | None = None) -> Any:
    """Run `function`; `env` holds the Secret values the operator put in the pod
    (`agent_api.secret_env`), the process environment when not given."""
    if function.http is not None:
        return await _invoke_http(function.name, function.http, context, session,
                                  os.environ if env is None else env)
    if function.python is not None:
        return await _invoke_python(function.python, context)
    # `prompt` functions need the AI engine, state and channels: the Runner runs them
    # (agent_runtime.ai.engine), never this function.
    raise FunctionError(f"function {function.name!r} has no kind this runtime can run here")


def headers(name: str, http: models.HttpFunction, env: Mapping[str, str]) -> dict[str, str]:
    """The function's headers with their Secret values, read from the pod's environment."""
    values = {}
    for header in http.headers:
        variable = secret_env.http_header(name, header.name)
        if variable not in env:
            # The spec is hot-reloaded, the environment is not: a new reference reaches the
            # pod when the operator replaces it (Secret references shape the pod template).
            raise FunctionError(
                f"header {header.name!r} of function {name!r}: the value of Secret "
                f"{header.secret_key_ref.name!r}, key {header.secret_key_ref.key!r}, is not in this "
                f"replica's environment ({variable}); the operator adds it when it replaces the pod "
                "after a change of Secret references, so retry shortly, and if it persists check "
                "the operator's events on the AgentCluster")
        values[header.name] = env[variable]
    return values


async def _invoke_http(name: str, http: models.HttpFunction, context: RunContext,
                       session: aiohttp.ClientSession, env: Mapping[str, str]) -> Any:
    body = context.body(http)
    sent_headers = headers(name, http, env)
    timeout = aiohttp.ClientTimeout(total=http.timeout_seconds)
    last_error = ""
    for attempt in range(http.retries + 1):
        if attempt:
            await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
        try:
            # Every method carries the JSON body, GET and DELETE too (RFC 9110 gives their
            # bodies no meaning, but the target needs the run's fields and state).
            async with session.request(http.method, http.url, json=body, timeout=timeout,
                                       headers=sent_headers) as response:
                text = await response.text()
                if response.status < 300:
                    return _decode(text)
                last_error = f"HTTP {response.status}: {text[:200]}"
                if response.status < 500 and response.status != 429:
                    break  # the caller's request is wrong; retrying will not fix it
        except (aiohttp.ClientError, TimeoutError) as error:
            last_error = f"{type(error).__name__}: {error}"
    raise FunctionError(f"{http.method} {http.url} failed after {attempt + 1} attempt(s): {last_error}")


def _decode(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return text


async def _invoke_python(python: models.PythonFunction, context: RunContext) -> Any:
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
