"""Tiers: how many agent replicas a namespace may run, how big each one is, and which images
it may run.

The operator's configuration (Helm values) lists the tiers; a namespace label
(`agentclusters.io/tier`) picks one, the default tier applies otherwise. Every replica is
one slot. The admission webhook, the reconcile and the MCP gateway all refuse an excess
with the message of `check_quota`, so a user reads the same numbers wherever they hit it.

Images: a replica runs with its namespace's runtime credentials and every Secret its spec
references, so `spec.image` is code the platform trusts with them. A tier lists the image
prefixes it allows (`allowedImages`); the operator's own agent image is always allowed, and
an empty list (the default) allows nothing else. `image_refusal` words the refusal for the
admission webhook and the reconcile alike.

Configuration comes, in this order, from an explicit file, from `AGENTCLUSTERS_TIERS`
(inline YAML or JSON), from the file named by `AGENTCLUSTERS_TIERS_FILE`, or from the
built-in default (a single tier, `standard`). YAML is a superset of JSON, so one loader
reads both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from agent_api import constants

# A Kubernetes resource quantity as written in practice: 500m, 1, 1.5, 512Mi, 2Gi.
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


# An allowedImages entry that allows every image: the policy switched off for that tier.
ANY_IMAGE = "*"
# A prefix must end where a reference's parts end, so "ghcr.io/acme/" cannot also allow
# "ghcr.io/acme-evil/...": a registry or repository path ("/"), every tag of one repository
# (":") or every digest of one repository ("@").
_PREFIX_ENDINGS = ("/", ":", "@")


def _check_image_prefix(prefix: str) -> str:
    if prefix != ANY_IMAGE and not prefix.endswith(_PREFIX_ENDINGS):
        raise ValueError(
            f'allowedImages entry "{prefix}" must end with "/" (a registry or repository path, e.g. '
            f'"ghcr.io/acme/"), ":" (every tag of one repository, e.g. "ghcr.io/acme/agent:") or "@" '
            f"(every digest of one repository), so that it cannot also allow images whose names merely "
            f'start the same ("{prefix}-evil/..."); "{ANY_IMAGE}" allows every image'
        )
    return prefix


ImagePrefix = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_check_image_prefix)]


class _Config(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Tier(_Config):
    """One tier: slots per namespace, and the resources of each replica pod."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    slots: Annotated[int, Field(ge=0)]
    """Replicas the whole namespace may run, across all its AgentClusters."""
    cpu: Annotated[str, Field(pattern=QUANTITY)] = "500m"
    """CPU of each replica pod, as both request and limit."""
    memory: Annotated[str, Field(pattern=QUANTITY)] = "512Mi"
    """Memory of each replica pod, as both request and limit."""
    min_schedule_interval_seconds: Annotated[int, Field(ge=0)] = 1
    """Shortest interval between two fires of a schedule in this tier."""
    allowed_images: list[ImagePrefix] = Field(default_factory=list)
    """Prefixes `spec.image` may start with, matched on the image exactly as written (no
    registry defaulting). The operator's own agent image is always allowed; empty allows no
    other image; "*" allows every image."""


class TierConfig(_Config):
    """The operator's tier configuration."""

    tiers: dict[str, Tier]
    default_tier: str
    """Tier of a namespace without the tier label."""
    namespace_label: str = constants.LABEL_TIER
    """Namespace label whose value names the namespace's tier."""

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        # In YAML a tier is written `pro: {slots: 5}`; its name is the key.
        if isinstance(data, dict) and isinstance(data.get("tiers"), dict):
            data = {
                **data,
                "tiers": {
                    key: ({"name": key, **value} if isinstance(value, dict) else value)
                    for key, value in data["tiers"].items()
                },
            }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TierConfig:
        if not self.tiers:
            raise ValueError("at least one tier must be configured")
        for key, tier in self.tiers.items():
            if tier.name != key:
                raise ValueError(f"tier {key!r} is named {tier.name!r}; the names must match")
        if self.default_tier not in self.tiers:
            raise ValueError(
                f"defaultTier {self.default_tier!r} is not a configured tier "
                f"(configured: {', '.join(sorted(self.tiers))})"
            )
        return self

    def for_namespace(self, labels: Mapping[str, str] | None) -> Tier:
        """The tier of a namespace with these labels.

        A label naming an unconfigured tier is an error, not a fallback to the default: a
        typo must not silently grant a namespace some other tier's slots.
        """
        name = (labels or {}).get(self.namespace_label) or self.default_tier
        tier = self.tiers.get(name)
        if tier is None:
            raise UnknownTierError(
                f"namespace label {self.namespace_label}={name} names no configured tier "
                f"(configured: {', '.join(sorted(self.tiers))})"
            )
        return tier


class UnknownTierError(LookupError):
    """A namespace's tier label names a tier the configuration does not have."""


DEFAULT = TierConfig(
    tiers={"standard": Tier(name="standard", slots=20)}, default_tier="standard"
)


def parse(text: str) -> TierConfig:
    """A configuration from YAML or JSON text."""
    return TierConfig.model_validate(yaml.safe_load(text))


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> TierConfig:
    """The configuration from `path`, else the environment, else the built-in default."""
    env = os.environ if environ is None else environ
    if path is not None:
        return parse(Path(path).read_text("utf-8"))
    if env.get(constants.ENV_TIERS):
        return parse(env[constants.ENV_TIERS])
    if env.get(constants.ENV_TIERS_FILE):
        return parse(Path(env[constants.ENV_TIERS_FILE]).read_text("utf-8"))
    return DEFAULT


def check_quota(tier: Tier, used_by_others: int, requested: int, namespace: str) -> str | None:
    """The refusal message if `requested` replicas do not fit, else None.

    `used_by_others` counts the slots of every *other* AgentCluster in the namespace, so a
    scale of an existing cluster is checked on its new size, not on the difference.
    """
    if used_by_others + requested <= tier.slots:
        return None
    return (
        f'namespace "{namespace}" (tier {tier.name}) has {tier.slots} agent '
        f"slot{'' if tier.slots == 1 else 's'}, {used_by_others} used by other clusters; "
        f"{requested} requested"
    )


def image_refusal(tier: Tier, image: str | None, default_image: str, namespace: str) -> str | None:
    """The refusal if `image` (a spec's `spec.image`) may not run in this tier, else None.

    None (the operator's image) and the operator's image itself are always allowed: the
    platform chose it. The message names the image, the tier, the allowed prefixes and the Helm
    value that would allow it, because the user who reads it usually cannot change the policy
    and must tell whoever can.
    """
    if image is None or image == default_image:
        return None
    if any(prefix == ANY_IMAGE or image.startswith(prefix) for prefix in tier.allowed_images):
        return None
    value = f"tiers.tiers.{tier.name}.allowedImages"
    if tier.allowed_images:
        allowed = f"images must start with {', '.join(tier.allowed_images)}, or be the operator's own image"
    else:
        allowed = f"tier {tier.name} allows no image but the operator's own"
    example = ",".join([*tier.allowed_images, _suggested_prefix(image)])
    return (
        f'spec.image "{image}" is not allowed in namespace "{namespace}" (tier {tier.name}): {allowed} '
        f'"{default_image}" (used when spec.image is unset). To allow another registry, a platform admin adds '
        f"its prefix to the Helm value {value}, e.g. --set '{value}={{{example}}}'"
    )


def _suggested_prefix(image: str) -> str:
    """The repository path of `image` up to its last "/" (its registry and organisation), or
    the repository with ":" when the name has no "/" (e.g. "python:" for "python:3.12")."""
    name = image.split("@", 1)[0]
    if "/" in name:
        return name.rsplit("/", 1)[0] + "/"
    return name.split(":", 1)[0] + ":"
