"""Operator settings refuse, at start-up, a database URL the tenant URLs cannot be built from."""

from __future__ import annotations

import pydantic
import pytest

from agent_operator.settings import OperatorSettings


@pytest.mark.parametrize("field", ["databaseUrl", "runtimeDatabaseUrl"])
def test_a_database_url_that_is_not_postgresql_is_refused_with_an_example(field):
    with pytest.raises(pydantic.ValidationError,
                       match=r"must start with postgresql:// .*e\.g\. postgresql://"):
        OperatorSettings.model_validate({field: "mysql://db/agents"})


def test_runtime_database_url_defaults_to_the_operators():
    settings = OperatorSettings.model_validate({"databaseUrl": "postgresql://op@db/agents"})

    assert settings.runtime_database_url == ""
    assert settings.credential_rotation_days == 0
