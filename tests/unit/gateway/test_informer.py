"""The informer's store (agent_gateway.informer.Informer): newer resourceVersions win whichever
way they arrive (watch event, the gateway's own write, a relist), a delete does not remove a
re-creation, and a write answered with something else than the object can wait for the watch."""

from __future__ import annotations

import asyncio

from agent_gateway import informer


def obj(name: str, version: str, namespace: str = "team", **spec: object) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version}, "spec": spec}


def store() -> informer.Informer[dict]:
    return informer.Informer(informer.Source("agentclusters", lambda **_: None), lambda o: o)


def test_resource_versions_compare_as_numbers():
    assert informer.newer("10", "9")
    assert not informer.newer("9", "10")
    assert not informer.newer("10", "10")
    assert informer.newer("opaque", "10")  # not a number: taken as newer
    assert informer.newer("1", None)


def test_an_older_event_never_replaces_a_newer_write():
    cache = store()
    cache.apply(obj("bot", "20", replicas=3))  # the answer to the gateway's own patch
    cache.apply(obj("bot", "19", replicas=2))  # the watch catching up with an earlier change
    assert cache.get("team", "bot")["spec"] == {"replicas": 3}


def test_a_delete_older_than_a_re_creation_leaves_it():
    cache = store()
    cache.apply(obj("bot", "30"))
    cache.forget(obj("bot", "25"))
    assert cache.get("team", "bot") is not None
    cache.forget(obj("bot", "31"))
    assert cache.get("team", "bot") is None


def test_a_relist_replaces_the_store_but_keeps_writes_newer_than_itself():
    cache = store()
    cache.apply(obj("gone", "5"))
    cache.apply(obj("written", "50"))
    cache._replace([obj("kept", "40")], "45")
    assert cache.get("team", "gone") is None
    assert cache.get("team", "kept") is not None
    assert cache.get("team", "written") is not None
    assert cache.synced


def test_only_the_namespace_asked_for_is_listed():
    cache = store()
    cache.apply(obj("a", "1", namespace="team"))
    cache.apply(obj("b", "2", namespace="other"))
    assert [o["metadata"]["name"] for o in cache.in_namespace("team")] == ["a"]


async def test_waiting_for_a_version_ends_when_the_watch_delivers_it():
    cache = store()
    cache.apply(obj("bot", "10"))
    waiting = asyncio.create_task(cache.wait_for("team", "bot", "12", within=5))
    await asyncio.sleep(0)
    cache.apply(obj("bot", "11"))
    await asyncio.sleep(0)
    assert not waiting.done()
    cache.apply(obj("bot", "12"))
    assert await waiting


async def test_waiting_for_a_version_gives_up_after_its_time():
    cache = store()
    assert not await cache.wait_for("team", "bot", "12", within=0.05)


async def test_an_unsynced_store_says_so_within_the_time_given():
    assert not await store().wait_synced(within=0.05)
