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
"""

from __future__ import annotations

PREFIX = "agentclusters"
REPLICA_TTL_SECONDS = 15
HEARTBEAT_SECONDS = 5


def replica_key(namespace: str, cluster: str, replica: str) -> str:
    return f"{PREFIX}:replica:{namespace}:{cluster}:{replica}"


def replicas_set_key(namespace: str, cluster: str) -> str:
    return f"{PREFIX}:replicas:{namespace}:{cluster}"
