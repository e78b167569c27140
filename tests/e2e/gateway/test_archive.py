"""The archive through MCP: describe_agent shows the newest archived replicas and the count,
list_archived_replicas pages through every one of them from PostgreSQL, newest first."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from agent_api import models
from tests.e2e.gateway import mcpclient
from tests.e2e.helpers import eventually
from tests.e2e.operator import agentclusters as ac
from tests.e2e.operator.conftest import manifest
from tests.e2e.operator.test_archive import _scale_cycle

pytestmark = pytest.mark.e2e

ARCHIVED = models.ARCHIVED_IN_STATUS + 5


def _archive_some(k8s_api: ApiClient, namespace: str, name: str) -> list[str]:
    """An agent with one live replica that archived ARCHIVED others; their names, oldest first."""
    agc = client.CustomObjectsApi(k8s_api)
    ac.create(agc, namespace, manifest(name, 1))
    eventually(lambda: len(ac.status(agc, namespace, name).get("members") or []) == 1, what="the first member")
    return [_scale_cycle(agc, namespace, name, 1) for _ in range(ARCHIVED)]


async def test_describe_agent_shows_the_newest_archived_and_the_count(gateway, k8s_api, namespace, token_for):
    archived = _archive_some(k8s_api, namespace, "flapper")
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        described = await mcp.call("describe_agent", name="flapper", namespace=namespace)

    assert described["archived_count"] == ARCHIVED
    assert [a["name"] for a in described["archived"]] == archived[-models.ARCHIVED_IN_STATUS:]


async def test_list_archived_replicas_pages_through_all_newest_first(gateway, k8s_api, namespace, token_for):
    archived = _archive_some(k8s_api, namespace, "pager")
    seen: list[str] = []
    totals: set[int] = set()
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        cursor = None
        for _ in range(10):
            page = await mcp.call("list_archived_replicas", name="pager", namespace=namespace, limit=10,
                                  **({"cursor": cursor} if cursor else {}))
            seen += [r["name"] for r in page["replicas"]]
            totals.add(page["total"])
            assert all(r["archived_at"] for r in page["replicas"])
            cursor = page["next_cursor"]
            if cursor is None:
                break

    assert seen == archived[::-1]
    assert totals == {ARCHIVED}


async def test_list_archived_replicas_refuses_a_made_up_cursor_and_names_an_unknown_agent(
        gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        bad_cursor = await mcp.refusal("list_archived_replicas", name="pager", namespace=namespace, cursor="page-2")
        unknown = await mcp.refusal("list_archived_replicas", name="ghost", namespace=namespace)

    assert 'cursor "page-2" is not one list_archived_replicas returned' in str(bad_cursor)
    assert bad_cursor.code == "invalid"
    assert 'no agent named "ghost"' in str(unknown)
    assert unknown.code == "not_found"


async def test_list_archived_replicas_is_annotated_read_only(gateway, namespace, token_for):
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        tools = {t.name: t for t in (await mcp.client.list_tools()).tools}

    hints = tools["list_archived_replicas"].annotations
    assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (True, False, True)


async def test_a_chat_pinned_to_a_replica_archived_beyond_the_status_window_says_it_is_archived(
        gateway, k8s_api, namespace, token_for):
    oldest = _archive_some(k8s_api, namespace, "forgetful")[0]  # no longer in status.archived
    async with mcpclient.connect(gateway.mcp_url, token_for(namespace)) as mcp:
        refused = await mcp.refusal("chat_with_agent", name="forgetful", namespace=namespace,
                                    message="still there?", replica=oldest)

    assert refused.code == "conflict", refused.structured
    assert f'replica "{oldest}" of agent "forgetful" is archived' in str(refused)
