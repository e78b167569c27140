"""The product announcement's scenario, end to end through the official MCP client:
make -> scale to 5 -> single and cluster schedules -> chat -> pinned follow-up -> scale to 3
(the two newest archived, their state readable, not writable, chat refused) -> scale to 5 (two
fresh names)."""

from __future__ import annotations

import collections
import re

import asyncpg
import pytest

from agent_gateway import auth
from agent_gateway.tools import chat
from tests.e2e.gateway import mcpclient
from tests.e2e.helpers import eventually_async

pytestmark = pytest.mark.e2e

NAME = re.compile(r"^[a-z]+-[a-z]+\d*$")  # adjective-animal, e.g. daring-duck


async def test_social_scraper(gateway, operator, namespace, token_for):
    agent = "social-scraper"
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        made = await mcp.call("make_agent", name=agent, namespace=namespace, ai_provider="echo")
        assert made["agent"] == agent

        scaled = await mcp.call("scale_agent", name=agent, replicas=5, namespace=namespace)
        first = scaled["members"]
        assert scaled["agent"] == agent and scaled["replicas"] == 5 and len(set(first)) == 5
        assert all(NAME.match(name) for name in first), first
        assert mcp.progress and mcp.progress[-1][1] == 5  # progress notifications while waiting

        await mcp.call("add_function", agent_name=agent, function_name="scraping.fetch",
                       python_entrypoint="agent_runtime.builtins:echo", namespace=namespace)
        single = await mcp.call("add_schedule", agent_name=agent, function_name="scraping.fetch",
                                cron_expression="*/2 * * * * *", schedule_mode="single", namespace=namespace)
        cluster = await mcp.call("add_schedule", agent_name=agent, function_name="scraping.fetch",
                                 cron_expression="*/2 * * * * *", schedule_mode="cluster", namespace=namespace)
        listed = await mcp.call("list_schedules", agent_name=agent, namespace=namespace)
        assert {(s["name"], s["mode"]) for s in listed["schedules"]} == {(single["name"], "single"),
                                                                        (cluster["name"], "cluster")}

        async def fires() -> dict | None:
            runs = (await mcp.call("list_runs", agent_name=agent, limit=500, namespace=namespace))["runs"]
            by_fire: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
            for run in runs:
                if run["trigger"] == "schedule":
                    by_fire[(run["schedule"], run["fire_time"])].append(run["replica"])
            singles = [r for (s, _), r in by_fire.items() if s == single["name"]]
            clusters = [r for (s, _), r in by_fire.items() if s == cluster["name"]]
            full = [r for r in clusters if sorted(r) == sorted(first)]
            return by_fire if len(singles) >= 3 and len(full) >= 2 else None

        by_fire = await eventually_async(fires, what="3 single-mode fires and 2 complete cluster-mode fires")
        for (schedule, fire_time), replicas in by_fire.items():
            if schedule == single["name"]:
                assert len(replicas) == 1, (fire_time, replicas)  # single: one run per fire
            else:
                assert len(replicas) == len(set(replicas)), (fire_time, replicas)  # cluster: one per replica
        await mcp.call("remove_schedule", agent_name=agent, schedule_name=single["name"], namespace=namespace)
        await mcp.call("remove_schedule", agent_name=agent, schedule_name=cluster["name"], namespace=namespace)

        hello = await mcp.call("chat_with_agent", name=agent, message="hello, who are you?", namespace=namespace)
        assert hello["replica"] in first
        assert hello["reply"] == "echo: hello, who are you? [no earlier turns of this conversation]"
        follow = await mcp.call("chat_with_agent", name=agent, message="and what did I just ask?",
                                replica=hello["replica"], namespace=namespace)
        assert follow["replica"] == hello["replica"]
        # The echo engine shows the memory it was given: the pinned follow-up sees the first turn.
        assert follow["reply"] == ('echo: and what did I just ask? [1 earlier turn of this conversation; '
                                   'you last said: "hello, who are you?"]'), follow["reply"]
        assert follow["conversation_id"] == hello["conversation_id"]
        # The replica keeps the conversation under the caller's key and the id it chose.
        stored = chat.bound_conversation(auth.Caller(f"system:serviceaccount:{namespace}:mcp-caller"),
                                         hello["conversation_id"])
        conn = await asyncpg.connect(operator.database_url)
        try:
            turns = await conn.fetch(
                "SELECT replica, role, content FROM conversation_turns WHERE namespace = $1 AND cluster = $2 "
                "AND conversation_id = $3 ORDER BY id", namespace, agent, stored)
        finally:
            await conn.close()
        assert {t["replica"] for t in turns} == {hello["replica"]}  # memory stays with the replica
        assert [t["content"] for t in turns if t["role"] == "user"] == ["hello, who are you?",
                                                                         "and what did I just ask?"]

        newest = first[3:]  # members come by ordinal: the last two are removed first
        for replica in newest:
            await mcp.call("set_agent_state", agent_name=agent, key="cursor", value={"page": 7, "by": replica},
                           replica=replica, namespace=namespace)
        await mcp.call("set_agent_state", agent_name=agent, key="shared", value=[1, 2], namespace=namespace)

        down = await mcp.call("scale_agent", name=agent, replicas=3, namespace=namespace)
        assert down["members"] == first[:3]
        described = await mcp.call("describe_agent", name=agent, namespace=namespace)
        assert sorted(a["name"] for a in described["archived"]) == sorted(newest)

        gone = newest[0]
        refused = await mcp.error("chat_with_agent", name=agent, message="still there?", replica=gone,
                                  namespace=namespace)
        assert "archived" in refused and all(live in refused for live in first[:3]), refused
        kept = await mcp.call("get_agent_state", agent_name=agent, key="cursor", replica=gone, namespace=namespace)
        assert kept["found"] and kept["archived"] and kept["value"] == {"page": 7, "by": gone}
        keys = await mcp.call("list_agent_state_keys", agent_name=agent, replica=gone, namespace=namespace)
        assert [k["key"] for k in keys["keys"]] == ["cursor"] and keys["archived"]
        read_only = await mcp.refusal("set_agent_state", agent_name=agent, key="cursor", value=1, replica=gone,
                                      namespace=namespace)
        assert "archived" in str(read_only) and "read-only" in str(read_only)
        assert read_only.code == "conflict", read_only.structured
        history = await mcp.call("list_runs", agent_name=agent, replica=gone, namespace=namespace)
        assert history["runs"] and {r["replica"] for r in history["runs"]} == {gone}

        up = await mcp.call("scale_agent", name=agent, replicas=5, namespace=namespace)
        fresh = set(up["members"]) - set(first)
        assert up["members"][:3] == first[:3] and len(fresh) == 2 and not fresh & set(newest)

        destroyed_not = await mcp.error("destroy_agent", name=agent, confirm=False, namespace=namespace)
        assert "confirm=true" in destroyed_not
        await mcp.call("destroy_agent", name=agent, confirm=True, namespace=namespace)
        assert not (await mcp.call("list_agents", namespace=namespace))["agents"]
