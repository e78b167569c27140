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


# --- Images -------------------------------------------------------------------------------

OWN = "ghcr.io/agent-clusters/agent-clusters:0.1.0"


@pytest.mark.parametrize(("allowed", "image"), [
    ([], None),  # no spec.image: the operator's own
    ([], OWN),
    (["registry.example.com/team/"], "registry.example.com/team/agent:1"),
    (["registry.example.com/team/"], "registry.example.com/team/sub/agent@sha256:" + "a" * 64),
    (["ghcr.io/acme/agent:"], "ghcr.io/acme/agent:2.0"),
    (["ghcr.io/acme/agent@"], "ghcr.io/acme/agent@sha256:" + "b" * 64),
    (["*"], "anything:at-all"),
])
def test_allowed_images(allowed: list[str], image: str | None) -> None:
    tier = tiers.Tier(name="t", slots=1, allowed_images=allowed)
    assert tiers.image_refusal(tier, image, OWN, "ns") is None


@pytest.mark.parametrize(("allowed", "image"), [
    ([], "ghcr.io/agent-clusters/agent-clusters:0.0.9"),  # another tag of the operator's image
    (["registry.example.com/team/"], "registry.example.com/team-evil/agent:1"),
    (["registry.example.com/team/"], "registry.example.com:443/team/agent:1"),  # matched as written
    (["ghcr.io/acme/agent:"], "ghcr.io/acme/agent-two:1"),
])
def test_refused_images(allowed: list[str], image: str) -> None:
    tier = tiers.Tier(name="t", slots=1, allowed_images=allowed)
    assert tiers.image_refusal(tier, image, OWN, "ns") is not None


def test_image_refusal_names_the_image_the_tier_the_prefixes_and_the_helm_value() -> None:
    tier = tiers.Tier(name="pro", slots=1, allowed_images=["ghcr.io/acme/", "registry.example.com/agents:"])
    assert tiers.image_refusal(tier, "docker.io/someone/agent:1", OWN, "team-a") == (
        'spec.image "docker.io/someone/agent:1" is not allowed in namespace "team-a" (tier pro): images must '
        "start with ghcr.io/acme/, registry.example.com/agents:, or be the operator's own image "
        f'"{OWN}" (used when spec.image is unset). To allow another registry, a platform admin adds its prefix '
        "to the Helm value tiers.tiers.pro.allowedImages, e.g. "
        "--set 'tiers.tiers.pro.allowedImages={ghcr.io/acme/,registry.example.com/agents:,docker.io/someone/}'"
    )


def test_image_refusal_of_a_tier_without_prefixes_suggests_the_repository() -> None:
    message = tiers.image_refusal(tiers.Tier(name="free", slots=1), "python:3.12", OWN, "ns")
    assert message is not None
    assert "tier free allows no image but the operator's own" in message
    assert message.endswith("--set 'tiers.tiers.free.allowedImages={python:}'")


def test_a_prefix_that_could_match_a_lookalike_is_refused_at_configuration() -> None:
    with pytest.raises(ValidationError, match=r'allowedImages entry "ghcr.io/acme" must end with "/"'):
        tiers.parse("defaultTier: t\ntiers: {t: {slots: 1, allowedImages: [ghcr.io/acme]}}")
