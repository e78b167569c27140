"""agent_api.tiers: configuration loading and the quota refusal message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_api import constants, tiers

CONFIG = """
defaultTier: free
tiers:
  free: {slots: 2, cpu: 250m, memory: 256Mi, minScheduleIntervalSeconds: 60}
  pro: {slots: 5, cpu: "1", memory: 1Gi, minScheduleIntervalSeconds: 1}
"""


def test_quota_message_gives_the_numbers() -> None:
    pro = tiers.parse(CONFIG).tiers["pro"]
    assert tiers.check_quota(pro, used_by_others=4, requested=3, namespace="team-a") == (
        'namespace "team-a" (tier pro) has 5 agent slots, 4 used by other clusters; 3 requested'
    )


def test_quota_message_singular_slot() -> None:
    one = tiers.Tier(name="tiny", slots=1)
    assert tiers.check_quota(one, 0, 2, "ns") == (
        'namespace "ns" (tier tiny) has 1 agent slot, 0 used by other clusters; 2 requested'
    )


@pytest.mark.parametrize(("used", "requested"), [(0, 0), (0, 5), (4, 1), (5, 0), (2, 3)])
def test_quota_allows_up_to_the_slots(used: int, requested: int) -> None:
    assert tiers.check_quota(tiers.Tier(name="pro", slots=5), used, requested, "ns") is None


def test_zero_slot_tier_refuses_any_replica() -> None:
    assert tiers.check_quota(tiers.Tier(name="off", slots=0), 0, 1, "ns") is not None


def test_yaml_and_json_parse_the_same() -> None:
    from_yaml = tiers.parse(CONFIG)
    as_json = json.dumps(from_yaml.model_dump(by_alias=True))
    assert tiers.parse(as_json) == from_yaml
    assert from_yaml.tiers["free"].min_schedule_interval_seconds == 60
    assert from_yaml.namespace_label == constants.LABEL_TIER


def test_namespace_label_picks_the_tier() -> None:
    config = tiers.parse(CONFIG)
    assert config.for_namespace({constants.LABEL_TIER: "pro"}).name == "pro"
    assert config.for_namespace({"other": "x"}).name == "free"
    assert config.for_namespace(None).name == "free"


def test_unknown_tier_label_is_an_error_not_the_default() -> None:
    with pytest.raises(tiers.UnknownTierError, match=r"agentclusters.io/tier=gold names no"):
        tiers.parse(CONFIG).for_namespace({constants.LABEL_TIER: "gold"})


def test_load_order(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(CONFIG)
    assert tiers.load(path).default_tier == "free"
    assert tiers.load(environ={constants.ENV_TIERS: CONFIG}).default_tier == "free"
    assert tiers.load(environ={constants.ENV_TIERS_FILE: str(path)}).tiers["pro"].slots == 5
    assert tiers.load(environ={}) == tiers.DEFAULT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaultTier: gold\ntiers: {free: {slots: 1}}", "defaultTier 'gold' is not a configured"),
        ("defaultTier: free\ntiers: {}", "at least one tier"),
        ("defaultTier: free\ntiers: {free: {slots: -1}}", "greater than or equal to 0"),
        ("defaultTier: free\ntiers: {free: {slots: 1, cpu: lots}}", "should match pattern"),
        ("defaultTier: free\ntiers: {free: {slots: 1, name: paid}}", "names must match"),
        ("defaultTier: free\ntiers: {free: {slots: 1, gpus: 2}}", "Extra inputs"),
    ],
)
def test_bad_configuration_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        tiers.parse(text)
