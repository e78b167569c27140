"""Tier slots: how many replicas a cluster may have, given what the namespace already runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent_api import tiers


def claimed_by(clusters: Iterable[dict[str, Any]]) -> int:
    """Slots the given AgentClusters claim: their requested replicas (deleting ones excluded)."""
    return sum(
        int((c.get("spec") or {}).get("replicas", 1))
        for c in clusters
        if not c["metadata"].get("deletionTimestamp")
    )


def target(
    tier: tiers.Tier, used_by_others: int, requested: int, live: int, namespace: str
) -> tuple[int, str | None]:
    """(replicas to run, refusal message or None).

    Quota never grows a cluster past the namespace's slots, and never kills replicas that
    already run: a cluster over quota (webhook bypassed, or slots lowered) keeps what it has.
    """
    message = tiers.check_quota(tier, used_by_others, requested, namespace)
    if message is None or requested <= live:
        return requested, message
    allowed = max(0, tier.slots - used_by_others)
    return max(live, min(requested, allowed)), message
