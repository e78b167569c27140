"""Agent lifecycle tools: make, scale, list, describe, destroy."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field, ValidationError

from agent_api import constants, models, secret_refs
from agent_gateway import deps, errors, results, spec_edit, store
from agent_gateway.tools import common

POLL_SECONDS = 0.5


def register(server: MCPServer, d: deps.Deps) -> None:
    @server.tool(annotations=common.ADD)
    async def make_agent(
        name: common.AgentName,
        namespace: common.Namespace = None,
        ai_provider: Literal["openai", "anthropic", "echo"] | None = None,
        ai_model: Annotated[str | None, Field(max_length=256)] = None,
        system_prompt: Annotated[str | None, Field(max_length=models.MAX_TEXT)] = None,
        image: Annotated[str | None, Field(max_length=512)] = None,
        when_deleted: Literal["Retain", "Delete"] = "Retain",
    ) -> results.Changed:
        """Create an agent: an AgentCluster with one replica (scale it with scale_agent).

        ai_provider echo needs no model or key (it replies with the message; for tries and tests).
        when_deleted says whether destroying the agent keeps its state archived (Retain) or deletes it.
        """
        caller, ns = await common.guard(d, namespace, "create")
        spec_edit.check_name(name)
        spec: dict[str, Any] = {"replicas": 1, "statePolicy": {"whenDeleted": when_deleted}}
        if ai_provider is not None:
            spec["ai"] = {k: v for k, v in {"provider": ai_provider, "model": ai_model,
                                            "systemPrompt": system_prompt}.items() if v is not None}
        if image is not None:
            spec["image"] = image
        spec_edit.validated(spec, name)
        # As for every edit (common.update_spec), though none of these parameters names a Secret
        # today. The image is the tier's to allow: the admission webhook refuses it in its words.
        await d.authorizer.require_secret_access(caller, ns, secret_refs.added(None, spec))
        body = {"apiVersion": constants.API_VERSION, "kind": constants.KIND,
                "metadata": {"name": name, "namespace": ns}, "spec": spec}
        created = await d.kube.create(ns, body)
        return common.changed(created, f'agent "{name}" created with 1 replica; scale it with scale_agent')

    @server.tool(annotations=common.REPLACE)
    async def scale_agent(
        name: common.AgentName,
        replicas: Annotated[int, Field(ge=constants.MIN_REPLICAS, le=constants.MAX_REPLICAS)],
        ctx: Context,
        namespace: common.Namespace = None,
        wait_ready: bool = True,
        timeout_seconds: Annotated[int, Field(ge=1, le=900)] | None = None,
    ) -> results.ScaleResult:
        """Scale an agent to `replicas` named replicas and wait until the members are allocated
        (and, with wait_ready, ready). Scale-down removes the newest replicas; their state is
        archived (kept, read-only), and their names are never reused. Reports progress while
        waiting."""
        _, ns = await common.guard(d, namespace, "patch", "scale")
        await d.kube.scale(ns, name, replicas)
        timeout = timeout_seconds or d.settings.scale_timeout_seconds
        deadline = time.monotonic() + timeout
        last_progress = None
        while True:
            obj = await d.kube.get(ns, name)
            status = obj.get("status") or {}
            members = sorted(status.get("members") or [], key=lambda m: m["ordinal"])
            settled = [m for m in members if m.get("phase") != "Terminating"]
            allocated = (len(members) == replicas and len(settled) == replicas
                         and (status.get("observedGeneration") or 0) >= obj["metadata"].get("generation", 0))
            ready = [m for m in settled if m.get("ready")]
            done = allocated and (not wait_ready or len(ready) == replicas)
            progress = (len(ready) if allocated and wait_ready else min(len(settled), replicas),
                        "ready" if allocated and wait_ready else "allocated")
            if progress != last_progress:
                await ctx.report_progress(progress[0], replicas,
                                          f"{progress[0]}/{replicas} members {progress[1]}: "
                                          + ", ".join(m["name"] for m in settled))
                last_progress = progress
            if done:
                return results.ScaleResult(agent=name, replicas=replicas, members=[m["name"] for m in settled])
            quota = next((c for c in status.get("conditions") or []
                          if c["type"] == constants.CONDITION_QUOTA_EXCEEDED and c["status"] == "True"), None)
            if quota is not None:
                raise errors.GatewayError(
                    f'agent "{name}" cannot grow to {replicas} replicas: {quota.get("message")}', code="forbidden")
            if time.monotonic() > deadline:
                raise errors.GatewayError(
                    f'agent "{name}" is not there yet after {timeout:.0f}s: {len(settled)} of {replicas} members '
                    f"allocated, {len(ready)} ready. The scale continues in the background; check with "
                    "describe_agent", code="unavailable", retry_after_seconds=errors.RETRY_SECONDS)
            await asyncio.sleep(POLL_SECONDS)

    @server.tool(annotations=common.READ)
    async def list_agents(namespace: common.Namespace = None) -> results.AgentList:
        """List the agents in a namespace with their replica counts and member names."""
        _, ns = await common.guard(d, namespace, "list")
        agents = []
        for obj in await d.kube.list(ns):
            status = obj.get("status") or {}
            agents.append(results.AgentSummary(
                name=obj["metadata"]["name"], namespace=ns, replicas=(obj.get("spec") or {}).get("replicas", 1),
                ready_replicas=status.get("readyReplicas", 0), members=common.member_names(obj)))
        return results.AgentList(namespace=ns, agents=agents)

    @server.tool(annotations=common.READ)
    async def describe_agent(name: common.AgentName, namespace: common.Namespace = None) -> results.AgentDescription:
        """Everything about one agent: live members (with phase and readiness), the newest
        archived members and how many are archived in all (list_archived_replicas pages through
        them), schedules, functions, webhooks, channels, MCP servers, AI settings, limits and
        conditions."""
        _, ns = await common.guard(d, namespace, "get")
        obj = await d.kube.get(ns, name)
        return describe(obj)

    register_archive(server, d)

    @server.tool(annotations=common.REMOVE)
    async def destroy_agent(name: common.AgentName, confirm: bool,
                            namespace: common.Namespace = None) -> results.Changed:
        """Delete an agent and all its replicas. Needs confirm=true. Its state is kept archived or
        deleted according to its statePolicy.whenDeleted (see describe_agent)."""
        _, ns = await common.guard(d, namespace, "delete")
        obj = await d.kube.get(ns, name)
        policy = ((obj.get("spec") or {}).get("statePolicy") or {}).get("whenDeleted", "Retain")
        fate = "kept, archived" if policy == "Retain" else "deleted"
        if not confirm:
            raise errors.GatewayError(
                f'destroying agent "{name}" removes its {len(common.member_names(obj))} replicas and its state is '
                f"{fate} (statePolicy.whenDeleted={policy}); call again with confirm=true to go ahead",
                code="invalid")
        await d.kube.delete(ns, name)
        return common.changed(obj, f'agent "{name}" is being deleted; its state is {fate}')


# A page of list_archived_replicas: a few kilobytes of structured output at most.
ARCHIVE_PAGE_MAX = 200
_CURSOR = re.compile(r"^(\d{1,9}):([a-z0-9-]{1,63})$")


def register_archive(server: MCPServer, d: deps.Deps) -> None:
    """The archive's own tool: the full record is in PostgreSQL, the status keeps the newest 20."""

    @server.tool(annotations=common.READ)
    async def list_archived_replicas(
        name: common.AgentName,
        namespace: common.Namespace = None,
        limit: Annotated[int, Field(ge=1, le=ARCHIVE_PAGE_MAX)] = 50,
        cursor: Annotated[str | None, Field(max_length=80, description=(
            "next_cursor of the previous page; leave out to start from the newest"))] = None,
    ) -> results.ArchivedReplicaPage:
        """Every archived replica of an agent (removed by scale-down, or left by a deletion
        with statePolicy Retain), newest first, one page at a time: name, ordinal, when it was
        created and archived. Their state and runs stay readable (get_agent_state, list_runs);
        their names are never given out again."""
        _, ns = await common.guard(d, namespace, "get")
        after = None
        if cursor is not None:
            if (found := _CURSOR.match(cursor)) is None:
                raise errors.GatewayError(
                    f'cursor "{cursor}" is not one list_archived_replicas returned; pass next_cursor '
                    "from the previous page unchanged, or leave cursor out to start from the newest",
                    code="invalid")
            after = (int(found[1]), found[2])
        # One row more than the page: whether there is a next page, without a second query.
        rows, total = await d.store.archived_page(ns, name, limit + 1, after)
        if total == 0:
            await d.kube.get(ns, name)  # nothing archived: say so if the agent is unknown, too
        page, more = rows[:limit], len(rows) > limit
        return results.ArchivedReplicaPage(
            agent=name, namespace=ns, total=total,
            replicas=[results.ArchivedReplica(name=a.replica, ordinal=a.ordinal,
                                              registered_at=store.iso(a.registered_at),
                                              archived_at=store.iso(a.archived_at) or "")
                      for a in page],
            next_cursor=f"{page[-1].ordinal}:{page[-1].replica}" if more else None,
        )


def describe(obj: dict[str, Any]) -> results.AgentDescription:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    try:
        limits = models.Limits.model_validate(spec.get("limits") or {}).model_dump(by_alias=True)
    except ValidationError:
        limits = spec.get("limits") or {}
    return results.AgentDescription(
        name=obj["metadata"]["name"], namespace=obj["metadata"]["namespace"], replicas=spec.get("replicas", 1),
        ready_replicas=status.get("readyReplicas", 0),
        members=[results.Member(name=m["name"], ordinal=m["ordinal"], phase=m.get("phase"), ready=m.get("ready", False))
                 for m in sorted(status.get("members") or [], key=lambda m: m["ordinal"])],
        archived=[results.ArchivedMember(name=a["name"], ordinal=a["ordinal"], archived_at=a.get("archivedAt"))
                  for a in sorted(status.get("archived") or [], key=lambda a: a["ordinal"])],
        archived_count=max(status.get("archivedCount", 0), len(status.get("archived") or [])),
        schedules=common.schedules(spec),
        functions=[f["name"] for f in spec.get("functions") or []],
        webhooks=[{"name": w["name"], "path": w["path"], "function": w["function"],
                   "synchronous": w.get("synchronous", False)} for w in spec.get("webhooks") or []],
        channels=[c["name"] for c in spec.get("channels") or []],
        mcp_servers=[m["name"] for m in spec.get("mcpServers") or []],
        ai={k: v for k, v in (spec.get("ai") or {}).items() if k != "apiKeySecretRef"} or None,
        limits=limits,
        conditions=[results.Condition(type=c["type"], status=c["status"], reason=c.get("reason"),
                                      message=c.get("message")) for c in status.get("conditions") or []],
    )
