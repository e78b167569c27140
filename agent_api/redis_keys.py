"""Redis key layout of the replica registry: written by the runtime, read by the gateway.

Redis holds liveness and routing hints only; it never decides who runs a scheduled fire.

Layout (all keys under the `agentclusters:` prefix):

- `agentclusters:replica:{namespace}:{cluster}:{replica}` — a hash, one per live replica,
  refreshed by the replica's heartbeat and expiring after `REPLICA_TTL_SECONDS` if the replica
  stops heartbeating. Fields (all strings):
    `address`     "http://<pod-ip>:<port>" to reach the replica's HTTP server
    `ready`       "1" when the replica serves traffic, "0" while starting or draining
    `in_flight`   number of runs executing now (a load hint for routing)
    `started_at`  ISO 8601 UTC time the process started
    `ordinal`     the member's creation ordinal
    `heartbeat_at` ISO 8601 UTC time of the last heartbeat
- `agentclusters:replicas:{namespace}:{cluster}` — a set of replica names that registered.
  It may name replicas whose hash has expired: readers treat a replica as live only when its
  hash exists. The runtime removes itself from the set when it deregisters.
- `agentclusters:delivery:{namespace}:{cluster}:{delivery_id}` — a webhook delivery id seen
  within the signature tolerance window (SET NX with an expiry): a replay is refused.

Every key names its namespace right after its kind, so a namespace's Redis ACL user is
confined to exactly `namespace_patterns(namespace)` (a namespace is a DNS label: no `:`, no
glob characters, so one namespace's patterns never match another's keys).
"""

from __future__ import annotations

PREFIX = "agentclusters"
REPLICA_TTL_SECONDS = 15
HEARTBEAT_SECONDS = 5


def replica_key(namespace: str, cluster: str, replica: str) -> str:
    return f"{PREFIX}:replica:{namespace}:{cluster}:{replica}"


def replicas_set_key(namespace: str, cluster: str) -> str:
    return f"{PREFIX}:replicas:{namespace}:{cluster}"


def delivery_key(namespace: str, cluster: str, delivery_id: str) -> str:
    return f"{PREFIX}:delivery:{namespace}:{cluster}:{delivery_id}"


KINDS = ("replica", "replicas", "delivery")


def namespace_patterns(namespace: str) -> list[str]:
    """The key patterns a namespace's replicas may touch (Redis ACL `~pattern`s)."""
    return [f"{PREFIX}:{kind}:{namespace}:*" for kind in KINDS]
