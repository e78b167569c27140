"""The operator refuses to start without the replica auth key, saying how to set one."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_api import replica_auth
from agent_operator import main, settings


def test_the_operator_refuses_to_start_without_the_replica_auth_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "operator.yaml"
    config.write_text("databaseUrl: postgresql://db/agents\n")
    monkeypatch.delenv(replica_auth.MASTER_KEY_ENV, raising=False)
    with pytest.raises(SystemExit) as exited:
        main.main([f"--config={config}"])
    assert exited.value.code == 2
    assert "AGENTCLUSTERS_REPLICA_AUTH_KEY is not set" in capsys.readouterr().err


def test_the_key_is_read_from_the_environment_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "operator.yaml"
    config.write_text("databaseUrl: postgresql://db/agents\n")
    monkeypatch.setenv(replica_auth.MASTER_KEY_ENV, "e" * 40)
    loaded = settings.load(config)
    assert loaded.replica_auth_key == "e" * 40
    assert "e" * 40 not in repr(loaded) and "replica_auth_key" not in loaded.model_dump()


def test_a_key_in_the_settings_file_is_refused(tmp_path: Path):
    """The file is a ConfigMap, readable by far more than the key should be."""
    config = tmp_path / "operator.yaml"
    config.write_text("databaseUrl: postgresql://db/agents\nreplicaAuthKey: " + "f" * 40 + "\n")
    with pytest.raises(ValueError, match="holds the replica auth key: remove it"):
        settings.load(config)
