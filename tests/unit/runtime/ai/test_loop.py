"""The agent loop: tool calls go round until the model answers; each limit stops a runaway
model (one that always asks for another tool) with its own stop reason."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.ai import loop, providers, tools
from tests.support.ai_provider import Reply, ScriptedProvider


@pytest.fixture
async def server():
    scripted = await ScriptedProvider().start()
    yield scripted
    await scripted.stop()


def _toolbox(calls: list[dict], delay: float = 0.0) -> tools.Toolbox:
    async def ping(arguments):
        calls.append(arguments)
        await asyncio.sleep(delay)
        return {"pong": len(calls)}

    toolbox = tools.Toolbox()
    toolbox.add("ping", "answers pong", {"type": "object"}, ping)
    return toolbox


def _openai(server: ScriptedProvider) -> providers.Provider:
    return providers.build(providers.Settings("openai", "m", server.openai_base_url, "k", 5.0, 0))


async def test_tool_results_go_back_until_the_model_answers(server):
    server.script = [Reply(tool_calls=[("ping", {"n": 1}), ("ping", {"n": 2})]), Reply(text="done")]
    calls: list[dict] = []
    result = await loop.run(_openai(server), "sys", [providers.Message("user", "go")],
                            _toolbox(calls), loop.Limits())
    assert result.stop_reason == "completed" and result.reply == "done"
    assert calls == [{"n": 1}, {"n": 2}]
    assert (result.iterations, result.function_calls, result.tokens) == (2, 2, 30)
    assert server.requests[1].tool_results() == 2


async def test_a_failing_tool_is_reported_to_the_model_not_fatal(server):
    async def broken(_arguments):
        raise RuntimeError("disk on fire")

    toolbox = tools.Toolbox()
    toolbox.add("broken", "fails", {"type": "object"}, broken)
    server.script = [Reply(tool_calls=[("broken", {}), ("missing", {})]), Reply(text="sorry")]
    result = await loop.run(_openai(server), None, [providers.Message("user", "go")], toolbox,
                            loop.Limits())
    assert result.stop_reason == "completed"
    results = [m for m in server.requests[1].messages() if m["role"] == "tool"]
    assert "RuntimeError: disk on fire" in results[0]["content"]
    assert "no tool named 'missing'" in results[1]["content"]


RUNAWAY = [
    ("max_iterations", loop.Limits(max_iterations=3), 0.0),
    ("max_tokens", loop.Limits(max_tokens=40), 0.0),  # 15 tokens per call
    ("max_function_calls", loop.Limits(max_function_calls=4), 0.0),
    ("max_wall_clock", loop.Limits(max_wall_clock_seconds=0.6), 0.1),
]


@pytest.mark.parametrize(("reason", "limits", "tool_delay"), RUNAWAY, ids=[r[0] for r in RUNAWAY])
async def test_each_limit_stops_a_runaway_loop(server, reason, limits, tool_delay):
    server.responder = lambda _request: Reply(tool_calls=[("ping", {})])
    calls: list[dict] = []
    started = asyncio.get_running_loop().time()
    result = await loop.run(_openai(server), None, [providers.Message("user", "go")],
                            _toolbox(calls, tool_delay), limits)
    assert result.stop_reason == reason
    assert asyncio.get_running_loop().time() - started < 5
    if reason == "max_iterations":
        assert result.iterations == 3 and len(server.requests) == 3
    if reason == "max_tokens":
        assert result.tokens >= 40 and result.iterations == 3
        assert server.requests[-1].body["max_tokens"] == 10  # asks only for what is left
    if reason == "max_function_calls":
        assert result.function_calls == 4 and len(calls) == 4
    assert result.limit_message(limits).startswith(f"stopped by {reason}: spec.limits.")


async def test_provider_error_stops_with_error_and_the_providers_message(server):
    server.script = [Reply(status=400, error="model 'm' does not exist")]
    result = await loop.run(_openai(server), None, [providers.Message("user", "go")],
                            _toolbox([]), loop.Limits())
    assert result.stop_reason == "error" and "model 'm' does not exist" in result.error
