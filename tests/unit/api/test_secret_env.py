from __future__ import annotations

from agent_api import secret_env


def test_names_follow_the_documented_contract():
    assert secret_env.AI_API_KEY == "AGENT_AI_API_KEY"
    assert secret_env.channel_url("team-alerts") == "AGENT_CHANNEL_TEAM_ALERTS_URL"
    assert secret_env.mcp_header_prefix("docs") == "AGENT_MCP_DOCS_HEADER_"


def test_is_secret_recognises_exactly_the_contracts_variables():
    assert secret_env.is_secret("AGENT_AI_API_KEY")
    assert secret_env.is_secret("AGENT_CHANNEL_OPS_URL")
    assert secret_env.is_secret("AGENT_MCP_DOCS_HEADER_Authorization")
    assert not secret_env.is_secret("AGENT_CLUSTER")
    assert not secret_env.is_secret("AGENT_CHANNEL_OPS")


def test_webhook_secrets_and_the_replica_token_have_their_own_names():
    assert secret_env.webhook_secret("github-push") == "AGENT_WEBHOOK_GITHUB_PUSH_SECRET"
    assert secret_env.REPLICA_TOKEN == "AGENT_REPLICA_TOKEN"


def test_webhook_secrets_and_the_replica_token_are_secrets_to_redact():
    assert secret_env.is_secret("AGENT_WEBHOOK_GH_SECRET")
    assert secret_env.is_secret("AGENT_REPLICA_TOKEN")
    assert not secret_env.is_secret("AGENT_WEBHOOK_TOLERANCE")


def test_http_header_variables_are_readable_and_secrets_to_redact():
    variable = secret_env.http_header("scraping.fetch-mentions", "X-Api-Token")

    assert variable.startswith("AGENT_HTTP_SCRAPING_FETCH_MENTIONS_HEADER_X_API_TOKEN_")
    assert secret_env.is_secret(variable)


def test_http_header_variables_never_collide_where_the_readable_part_would():
    # '.' and '-' both read as '_', and header names may differ only by case.
    names = {secret_env.http_header("a.b", "X-Token"), secret_env.http_header("a-b", "X-Token"),
             secret_env.http_header("a-b", "x-token")}

    assert len(names) == 3
