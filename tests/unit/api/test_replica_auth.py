"""The per-cluster replica credential: derived, distinct per cluster, its master key required."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from agent_api import replica_auth

KEY = b"k" * 32


def test_the_token_is_the_documented_hmac_of_namespace_and_cluster():
    expected = hmac.new(KEY, b"team-a/scraper", hashlib.sha256).hexdigest()
    assert replica_auth.token(KEY, "team-a", "scraper") == expected


def test_every_cluster_and_namespace_gets_a_different_token():
    tokens = {replica_auth.token(KEY, ns, cluster)
              for ns, cluster in [("team-a", "scraper"), ("team-b", "scraper"), ("team-a", "writer")]}
    assert len(tokens) == 3
    assert replica_auth.token(b"x" * 32, "team-a", "scraper") not in tokens


def test_a_missing_master_key_says_how_to_set_one():
    with pytest.raises(replica_auth.MissingMasterKey, match=r"AGENTCLUSTERS_REPLICA_AUTH_KEY is not set.*openssl"):
        replica_auth.master_key(None, who="agentclusters gateway")


def test_a_short_master_key_is_refused_with_its_length():
    with pytest.raises(replica_auth.MissingMasterKey, match="is 5 characters long"):
        replica_auth.master_key("short", who="agentclusters operator")


def test_the_fingerprint_names_the_key_without_revealing_it():
    assert replica_auth.fingerprint(KEY) != replica_auth.fingerprint(b"y" * 32)
    assert KEY.decode() not in replica_auth.fingerprint(KEY)
