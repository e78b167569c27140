"""run_function and get_run through MCP: trigger a function now on any or a named replica, then
read the run (output, error, stop reason, replica, timestamps); runs of agents the caller may
not read stay hidden."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.gateway import mcpclient

pytestmark = pytest.mark.e2e


async def finished(mcp: mcpclient.Session, agent: str, run_id: int, namespace: str, within: float = 60) -> dict:
    deadline = time.monotonic() + within
    while True:
        run = await mcp.call("get_run", name=agent, run_id=run_id, namespace=namespace)
        if run["status"] != "running" or time.monotonic() > deadline:
            return run
        await asyncio.sleep(0.5)


async def start(mcp: mcpclient.Session, within: float = 30, **arguments: object) -> dict:
    """run_function, again while the replica has not loaded a just-added function (the gateway
    answers `unavailable` with a retry time for that)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await mcp.call("run_function", **arguments)
        except mcpclient.ToolFailed as refused:
            if refused.code != "unavailable" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(refused.structured.get("retry_after_seconds", 1))


async def agent_with_functions(mcp: mcpclient.Session, name: str, namespace: str, replicas: int) -> list[str]:
    await mcp.call("make_agent", name=name, ai_provider="echo", namespace=namespace)
    await mcp.call("add_function", agent_name=name, function_name="work",
                   python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
    await mcp.call("add_function", agent_name=name, function_name="broken",
                   python_entrypoint="agent_runtime.builtins:does_not_exist", namespace=namespace)
    return (await mcp.call("scale_agent", name=name, replicas=replicas, namespace=namespace))["members"]


async def test_run_function_on_any_replica_then_get_run_reads_its_output(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        members = await agent_with_functions(mcp, "worker", namespace, 2)
        started = await start(mcp, name="worker", function="work", payload={"page": 3},
                                 namespace=namespace)
        assert started["replica"] in members and started["status"] == "running" and started["run_id"] > 0
        run = await finished(mcp, "worker", started["run_id"], namespace)
    assert run["id"] == started["run_id"] and run["replica"] == started["replica"]
    assert run["status"] == "succeeded" and run["error"] is None and run["trigger"] == "manual"
    assert run["function"] == "work"
    # a python function's return value, as the run history keeps it
    assert run["output"]["result"]["echo"] == {"page": 3}
    assert run["output"]["result"]["replica"] == started["replica"]
    assert run["started_at"] and run["finished_at"] and run["started_at"] <= run["finished_at"]
    assert run["stop_reason"] is None  # a python function has no agent loop


async def test_run_function_on_a_named_replica_runs_there(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        members = await agent_with_functions(mcp, "worker", namespace, 2)
        for replica in members:
            started = await start(mcp, name="worker", function="work", replica=replica,
                                     namespace=namespace)
            run = await finished(mcp, "worker", started["run_id"], namespace)
            assert started["replica"] == run["replica"] == run["output"]["result"]["replica"] == replica


async def test_get_run_of_a_failed_run_carries_its_error(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await agent_with_functions(mcp, "worker", namespace, 1)
        started = await start(mcp, name="worker", function="broken", namespace=namespace)
        run = await finished(mcp, "worker", started["run_id"], namespace)
    assert run["status"] == "failed" and "does_not_exist" in run["error"], run


async def test_unknown_runs_functions_and_replicas_are_not_found(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await agent_with_functions(mcp, "worker", namespace, 1)
        await agent_with_functions(mcp, "other", namespace, 1)
        started = await start(mcp, name="other", function="work", namespace=namespace)
        cases = [
            ("get_run", {"name": "worker", "run_id": 999_999_999}, 'agent "worker" has no run 999999999'),
            # a run of another agent is not this agent's
            ("get_run", {"name": "worker", "run_id": started["run_id"]},
             f'agent "worker" has no run {started["run_id"]}'),
            ("get_run", {"name": "ghost", "run_id": started["run_id"]}, 'no agent named "ghost"'),
            ("run_function", {"name": "worker", "function": "never"},
             'agent "worker" has no function named "never"'),
            ("run_function", {"name": "worker", "function": "work", "replica": "nobody-here"},
             'agent "worker" has no replica named "nobody-here"'),
            ("run_function", {"name": "ghost", "function": "work"}, 'no agent named "ghost"'),
        ]
        for tool, arguments, expected in cases:
            refused = await mcp.refusal(tool, namespace=namespace, **arguments)
            assert expected in str(refused), (tool, arguments, str(refused))
            assert refused.code == "not_found", (tool, arguments, refused.structured)


async def test_runs_of_another_namespace_are_forbidden(gateway, namespace, make_namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        await agent_with_functions(mcp, "worker", namespace, 1)
        started = await start(mcp, name="worker", function="work", namespace=namespace)
    elsewhere = make_namespace()
    async with mcpclient.connect(gateway.mcp_url, token_for(elsewhere)) as outsider:
        for tool, arguments in (("get_run", {"run_id": started["run_id"]}), ("run_function", {"function": "work"})):
            refused = await outsider.refusal(tool, name="worker", namespace=namespace, **arguments)
            assert refused.code == "forbidden", (tool, refused.structured)
            # refused before anything is looked up: nothing says whether the run exists
            assert refused.structured["message"].startswith("forbidden: ") and "may not" in str(refused)
