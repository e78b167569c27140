"""When the operator issues a namespace new credentials (without a cluster: the decision)."""

from __future__ import annotations

import datetime as dt

import pytest

from agent_api import constants
from agent_operator import credentials

NOW = dt.datetime(2030, 6, 1, 12, tzinfo=dt.UTC)
ISSUED = "2030-05-01T12:00:00Z"  # 31 days before NOW


def _secret(**annotations: str) -> credentials.RuntimeSecret:
    return credentials.RuntimeSecret(True, {"DATABASE_URL": "postgresql://r:p@db/agents"},
                                     annotations, "42")


def test_a_missing_secret_gets_credentials():
    missing = credentials.RuntimeSecret.of(None)

    assert credentials.rotation_reason(missing, 0, NOW) == "the runtime Secret did not exist"


def test_a_current_secret_is_left_alone():
    secret = _secret(**{constants.ANNOTATION_CREDENTIALS_ROTATED_AT: ISSUED})

    assert credentials.rotation_reason(secret, 0, NOW) is None
    assert credentials.rotation_reason(secret, 90, NOW) is None


@pytest.mark.parametrize("handled", [None, "", "1"])
def test_a_new_rotate_value_asks_for_rotation(handled):
    annotations = {constants.ANNOTATION_ROTATE_CREDENTIALS: "2"}
    if handled is not None:
        annotations[constants.ANNOTATION_CREDENTIALS_ROTATED_FOR] = handled

    assert credentials.rotation_reason(_secret(**annotations), 0, NOW) == \
        f"asked for with {constants.ANNOTATION_ROTATE_CREDENTIALS}=2"


def test_a_rotate_value_already_acted_on_asks_nothing():
    secret = _secret(**{constants.ANNOTATION_ROTATE_CREDENTIALS: "2",
                        constants.ANNOTATION_CREDENTIALS_ROTATED_FOR: "2"})

    assert credentials.rotation_reason(secret, 0, NOW) is None


@pytest.mark.parametrize("issued", [ISSUED, None, "last tuesday"])
def test_credentials_older_than_the_rotation_period_or_of_unknown_age_are_renewed(issued):
    annotations = {} if issued is None else {constants.ANNOTATION_CREDENTIALS_ROTATED_AT: issued}

    assert credentials.rotation_reason(_secret(**annotations), 30, NOW) == \
        "older than credentialRotationDays (30)"
    assert credentials.rotation_reason(_secret(**annotations), 0, NOW) is None  # 0: never


def test_secret_values_are_decoded():
    obj = {"metadata": {"resourceVersion": "7", "annotations": {"a": "b"}},
           "data": {"REDIS_URL": "cmVkaXM6Ly9yZWRpcy8w"}}

    assert credentials.RuntimeSecret.of(obj) == credentials.RuntimeSecret(
        True, {"REDIS_URL": "redis://redis/0"}, {"a": "b"}, "7")
