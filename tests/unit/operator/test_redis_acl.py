"""A namespace's Redis user name and URL: deterministic, escaped, never carrying the operator's
own credentials; bad input refused with what to fix."""

from __future__ import annotations

import pytest
from redis.asyncio import connection

from agent_api import redis_keys
from agent_operator import redis_acl


def test_the_username_is_a_pure_function_of_the_namespace():
    assert redis_acl.username_for("team-a") == "agentclusters-ns-team-a" == redis_acl.username_for("team-a")


@pytest.mark.parametrize("namespace", ["", "Team", "a:b", "a*", "a b", "-a", "x" * 64])
def test_a_name_that_is_not_a_namespace_is_refused(namespace):
    with pytest.raises(ValueError, match="is not a Kubernetes namespace name"):
        redis_acl.username_for(namespace)


def test_the_rules_confine_keys_to_the_namespace_patterns_and_hash_the_password():
    rules = redis_acl.desired_rules("team-a", "s3cret")
    assert rules[:2] == ["reset", "on"]
    assert [r[1:] for r in rules if r.startswith("~")] == redis_keys.namespace_patterns("team-a")
    assert f"#{redis_acl.password_hash('s3cret')}" in rules and not any("s3cret" in r for r in rules)
    assert "resetchannels" in rules and "-@all" in rules
    assert not any(r.startswith(("&", "%", "allkeys", "allchannels", "nopass", "+@")) for r in rules)


def test_an_empty_password_is_refused():
    with pytest.raises(ValueError, match="password of namespace 'team-a' is empty"):
        redis_acl.desired_rules("team-a", "")


@pytest.mark.parametrize(("base", "expected"), [
    ("redis://127.0.0.1:6379/0", "redis://agentclusters-ns-b:p%40ss%3Aw%2Frd%25%3F%23@127.0.0.1:6379/0"),
    ("rediss://:operator-pw@redis.infra:6380/2?ssl_cert_reqs=required&password=operator-pw",
     "rediss://agentclusters-ns-b:p%40ss%3Aw%2Frd%25%3F%23@redis.infra:6380/2?ssl_cert_reqs=required"),
    ("redis://admin:operator-pw@[fd00::1]:6379", "redis://agentclusters-ns-b:p%40ss%3Aw%2Frd%25%3F%23@[fd00::1]:6379"),
    ("unix:///run/redis.sock?db=1", "unix://agentclusters-ns-b:p%40ss%3Aw%2Frd%25%3F%23@/run/redis.sock?db=1"),
])
def test_the_url_carries_only_the_namespace_user(base, expected):
    url = redis_acl.redis_url_for(base, "agentclusters-ns-b", "p@ss:w/rd%?#")
    assert url == expected
    assert "operator-pw" not in url and "admin" not in url
    parsed = connection.parse_url(url)  # what redis-py will connect with
    assert (parsed["username"], parsed["password"]) == ("agentclusters-ns-b", "p@ss:w/rd%?#")


def test_a_url_that_is_not_redis_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="must start with redis://, rediss:// or unix://, not 'http'") as refused:
        redis_acl.redis_url_for("http://user:secret@host", "u", "p")
    assert "secret" not in str(refused.value)
