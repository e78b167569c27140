"""The replica's identity and connection settings from its environment."""

from __future__ import annotations

import pytest

from agent_runtime import config, database

ENV = {"AGENT_NAMESPACE": "team-a", "AGENT_CLUSTER": "scraper", "AGENT_REPLICA": "daring-duck",
       "POD_IP": "10.0.0.7", "DATABASE_URL": "postgresql://db/agents",
       "REDIS_URL": "redis://redis/0", "AGENT_REPLICA_TOKEN": "0123456789abcdef"}


def test_defaults_connect_directly_and_listen():
    identity = config.Identity.from_env(ENV)
    assert identity.database_pooling == "session" and identity.listens
    assert identity.scheduler_poll_seconds == 5.0


def test_transaction_pooling_turns_off_listen_and_the_statement_cache():
    identity = config.Identity.from_env({**ENV, "AGENT_DATABASE_POOLING": "transaction"})
    assert not identity.listens
    kwargs = database.connect_kwargs(identity.database_pooling)
    assert kwargs["statement_cache_size"] == 0
    assert "server_settings" not in kwargs  # PgBouncer refuses unknown startup parameters


def test_every_connection_has_a_statement_and_a_connect_timeout():
    for pooling in ("session", "transaction"):
        kwargs = database.connect_kwargs(pooling)
        assert kwargs["timeout"] > 0 and kwargs["command_timeout"] > 0


def test_an_unknown_pooling_mode_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="AGENT_DATABASE_POOLING='bouncy' is not a pooling mode: "
                                         "use 'session'"):
        config.Identity.from_env({**ENV, "AGENT_DATABASE_POOLING": "bouncy"})


def test_missing_variables_are_named():
    with pytest.raises(ValueError, match="missing required environment variables: DATABASE_URL"):
        config.Identity.from_env({k: v for k, v in ENV.items() if k != "DATABASE_URL"})


def test_a_missing_replica_token_is_named_with_where_it_comes_from():
    with pytest.raises(ValueError, match=r"AGENT_REPLICA_TOKEN .*Secret agentclusters-replica-tokens, key scraper"):
        config.Identity.from_env({k: v for k, v in ENV.items() if k != "AGENT_REPLICA_TOKEN"})


def test_the_replica_token_is_not_in_the_identitys_repr():
    assert "0123456789abcdef" not in repr(config.Identity.from_env(ENV))
