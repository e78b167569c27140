"""The merge patch the gateway sends: exactly the difference, removals as null."""

from __future__ import annotations

from agent_gateway import kube


def test_merge_patch_sends_only_changes():
    old = {"replicas": 3, "ai": {"provider": "echo"}, "functions": [{"name": "a"}], "limits": {"maxTokens": 5}}
    new = {"replicas": 3, "functions": [{"name": "a"}, {"name": "b"}], "limits": {"maxTokens": 5, "maxIterations": 2}}
    assert kube.merge_patch(old, new) == {"ai": None, "functions": [{"name": "a"}, {"name": "b"}],
                                          "limits": {"maxIterations": 2}}


def test_merge_patch_of_equal_specs_is_empty():
    assert kube.merge_patch({"a": {"b": 1}}, {"a": {"b": 1}}) == {}
