"""The gateway's identity settings: the token audience, the replica auth key from the
environment only, and refusing to serve HTTP without that key."""

from __future__ import annotations

import pytest

from agent_api import replica_auth
from agent_gateway import main, settings
from devcluster import gateway_process

URLS = ["--database-url=postgresql://db/agents", "--redis-url=redis://redis/0"]


def test_the_default_audience_is_the_one_dev_tokens_are_minted_for():
    assert settings.Settings().token_audience == settings.DEFAULT_AUDIENCE == gateway_process.AUDIENCE


def test_the_replica_auth_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(replica_auth.MASTER_KEY_ENV, "k" * 32)
    config = settings.from_args(settings.parser().parse_args([*URLS, "--token-audience=mcp.example.com"]))
    assert config.replica_auth_key == b"k" * 32 and config.token_audience == "mcp.example.com"
    assert "k" * 32 not in repr(config)


def test_http_mode_refuses_to_start_without_the_replica_auth_key(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]):
    monkeypatch.delenv(replica_auth.MASTER_KEY_ENV, raising=False)
    assert main.main(URLS) == 2
    assert "AGENTCLUSTERS_REPLICA_AUTH_KEY is not set" in capsys.readouterr().err


def test_metrics_port_is_off_by_default_and_a_bad_one_is_refused_with_the_range(capsys) -> None:
    assert settings.from_args(settings.parser().parse_args([])).metrics_port == 0
    assert settings.from_args(settings.parser().parse_args(["--metrics-port=9091"])).metrics_port == 9091
    with pytest.raises(SystemExit):
        settings.parser().parse_args(["--metrics-port=70000"])
    assert "give 1-65535, or 0 to serve no metrics" in capsys.readouterr().err


def test_log_format_is_json_unless_asked_for_text(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AGENTCLUSTERS_LOG_FORMAT", raising=False)
    assert settings.from_args(settings.parser().parse_args(URLS)).log_format == "json"
    assert settings.from_args(settings.parser().parse_args([*URLS, "--log-format=text"])).log_format == "text"


def test_watch_namespaces_are_a_comma_separated_list():
    args = settings.parser().parse_args(["--watch-namespaces", "team-a, team-b"])
    assert settings.from_args(args).watch_namespaces == ("team-a", "team-b")
    assert settings.from_args(settings.parser().parse_args([])).watch_namespaces == ()


def test_a_watch_namespace_that_is_not_a_namespace_name_is_refused_with_the_form_expected(capsys):
    with pytest.raises(SystemExit):
        settings.parser().parse_args(["--watch-namespaces", "team-a,Team_B"])
    error = capsys.readouterr().err
    assert "'Team_B' is not a namespace name" in error
    assert "separated by commas, e.g. team-a,team-b" in error
