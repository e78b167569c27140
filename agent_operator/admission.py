"""What the validating webhook refuses beyond the CRD schema: cron and time-zone syntax,
the tier's minimum schedule interval and allowed images, the namespace's slots, and Secret
references the requesting user may not read (`agent_api.secret_refs`).

Pure functions; `handlers.py` wires them to kopf's admission server and makes the API calls
(the namespace's tier, its clusters, the SubjectAccessReviews). The same checks run in the MCP
gateway before it patches anything, so both ways in say the same words.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pydantic

from agent_api import cron, models, secret_refs, tiers
from agent_operator import quota

# Fires looked at when measuring a schedule's shortest interval.
_INTERVAL_SAMPLE = 50


def spec_errors(spec: dict[str, Any], tier: tiers.Tier, now: dt.datetime) -> list[str]:
    """Every problem with the spec, each naming the field and how to fix it."""
    try:
        parsed = models.AgentClusterSpec.model_validate(spec)
    except pydantic.ValidationError as error:
        return [f"spec.{line}" for line in models.error_messages(error)]
    problems = []
    for i, schedule in enumerate(parsed.schedules):
        where = f"spec.schedules[{i}] ({schedule.name})"
        try:
            cron.validate(schedule.cron, schedule.timezone)
        except cron.CronError as error:
            problems.append(f"{where}: {error}")
            continue
        gap = shortest_interval(schedule.cron, schedule.timezone, now)
        if gap is not None and gap < tier.min_schedule_interval_seconds:
            problems.append(
                f"{where}: cron {schedule.cron!r} fires every {gap:g}s, but tier {tier.name} allows "
                f"at most one fire every {tier.min_schedule_interval_seconds}s"
            )
    return problems


def shortest_interval(expression: str, timezone: str, now: dt.datetime) -> float | None:
    """Smallest gap in seconds between consecutive fires over the next few dozen fires."""
    horizon = now + dt.timedelta(days=366)
    times = cron.fire_times(expression, timezone, now, horizon, limit=_INTERVAL_SAMPLE)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return min(gaps) if gaps else None


def quota_error(
    tier: tiers.Tier, namespace: str, name: str, requested: int, clusters: list[dict[str, Any]]
) -> str | None:
    """The refusal for a create or scale that the namespace's slots cannot hold."""
    others = [c for c in clusters if c["metadata"]["name"] != name]
    return tiers.check_quota(tier, quota.claimed_by(others), requested, namespace)


def image_error(spec: dict[str, Any], old_spec: dict[str, Any] | None, tier: tiers.Tier, default_image: str,
                namespace: str) -> str | None:
    """The tier's refusal of the image a create or update sets.

    An update that keeps the image is not refused for it: the operator's own finalizer patches
    and a teammate's edit of another field must go through on an object admitted before the
    policy; the reconcile still starts no pod from it.
    """
    image = spec.get("image")
    if old_spec is not None and old_spec.get("image") == image:
        return None
    return tiers.image_refusal(tier, image, default_image, namespace)


def secret_uses_to_authorize(spec: dict[str, Any], old_spec: dict[str, Any] | None, user: str,
                             exempt: list[str]) -> list[secret_refs.SecretUse]:
    """The references the requesting user must be allowed to get: those this request adds,
    unless the user is an exempt writer (one that checks its own callers, like the gateway)."""
    if user in exempt:
        return []
    return secret_refs.added(old_spec, spec)
