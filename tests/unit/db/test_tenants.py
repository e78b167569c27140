"""Tenant role names, passwords, SCRAM verifiers and URLs, without a server."""

from __future__ import annotations

import base64
import re

import pytest

from agent_api.db import tenants


def test_role_name_is_deterministic_valid_and_distinct_per_database_and_namespace():
    longest = "a" * 63
    names = {tenants.role_name(db, ns) for db in ("agents", "other") for ns in ("a", longest)}

    assert tenants.role_name("agents", "a") == tenants.role_name("agents", "a")
    assert len(names) == 4
    # The CHECK constraint of tenant_roles, and an identifier PostgreSQL keeps as is.
    assert all(re.fullmatch(r"agentclusters_t_[0-9a-f]{20}", n) and len(n) <= 63 for n in names)


@pytest.mark.parametrize("namespace", ["", "Team", "team_a", "-team", "team-", "a" * 64])
def test_role_name_refuses_what_is_not_a_namespace(namespace):
    with pytest.raises(ValueError, match="not a Kubernetes namespace name"):
        tenants.role_name("agents", namespace)


def test_new_passwords_are_long_random_and_acceptable():
    passwords = {tenants.new_password() for _ in range(100)}

    assert len(passwords) == 100
    assert all(len(p) >= 40 and tenants.password_acceptable(p) for p in passwords)


@pytest.mark.parametrize("password", [None, "", "short-password", "p\u00e4sswordpassword-long",
                                      "with space inside it!", "tab\tinside-a-password"])
def test_passwords_the_operator_would_replace(password):
    assert not tenants.password_acceptable(password)


def test_scram_verifier_has_postgresql_form_and_fresh_salt():
    first = tenants.scram_sha256_verifier("correct-horse-battery")
    second = tenants.scram_sha256_verifier("correct-horse-battery")

    match = re.fullmatch(r"SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)",
                         first)
    assert match is not None
    assert [len(base64.b64decode(g)) for g in match.groups()] == [16, 32, 32]
    assert first != second  # a new salt each time
    assert "correct-horse-battery" not in first


def test_tenant_url_replaces_the_credentials_and_escapes_them():
    url = tenants.tenant_url("postgresql://operator:s3cret@db.example:6432/agents?sslmode=require"
                             "&user=operator&password=s3cret", "agentclusters_t_0123", "p@ss:/w?rd#%")

    assert url == ("postgresql://agentclusters_t_0123:p%40ss%3A%2Fw%3Frd%23%25@db.example:6432"
                   "/agents?sslmode=require")
    assert tenants.url_credentials(url) == ("agentclusters_t_0123", "p@ss:/w?rd#%")


def test_tenant_url_keeps_ipv6_and_several_hosts():
    assert tenants.tenant_url("postgresql://[::1]:5432,db2:5432/agents", "r", "p") \
        == "postgresql://r:p@[::1]:5432,db2:5432/agents"
    assert tenants.tenant_url("postgres://pgbouncer/agents", "r", "p") == "postgres://r:p@pgbouncer/agents"


@pytest.mark.parametrize("base, message", [
    ("mysql://db/agents", "must start with postgresql://"),
    ("postgresql:///agents", "names no host"),
])
def test_tenant_url_refuses_what_is_not_a_postgresql_url(base, message):
    with pytest.raises(ValueError, match=message):
        tenants.tenant_url(base, "r", "p")


def test_url_credentials_of_urls_without_them():
    assert tenants.url_credentials("postgresql://db/agents") == (None, None)
    assert tenants.url_credentials("postgresql://user@db/agents") == ("user", None)
