"""Replica names: `daring-duck`, `swift-falcon`, ... chosen deterministically per cluster.

Why names are derived from (cluster, candidate index) and not from (cluster, ordinal)
--------------------------------------------------------------------------------------
Each cluster has its own candidate sequence, a pure function of the cluster name:
candidate *i* is a keyed pseudo-random permutation (a small Feistel network over
sha256) of all adjective-animal pairs, applied to *i*. There is no global random state,
so every process, in every namespace, computes the same sequence for the same cluster.

`allocate` walks that sequence from the start and keeps the first candidates that are
not in `taken`. The caller puts in `taken` every name used by any live or archived member
of any cluster in the namespace, this cluster's own history included, and names retired
by a `statePolicy: Delete` deletion. The operator reads them from PostgreSQL
(`cluster_members`, `retired_replica_names`), the complete record: `status.archived`
keeps only the newest few. So:

* the names a cluster gets are a pure function of (cluster name, `taken`): the same
  cluster scaled the same way in a fresh namespace gets the same names;
* a name is never reused, because a cluster's own past names are always in `taken`
  (they stay in PostgreSQL, even after the AgentCluster is deleted);
* the allocation needs no cursor, so it is resumable for free: an operator that crashed
  between choosing names and recording them simply computes the same names again.

The ordinal (`status.nextOrdinal`) is deliberately *not* the candidate index. Ordinals
count members in creation order (0, 1, 2, ... with no gaps; a cluster recreated under the
same name continues after the highest ordinal its predecessors archived) and decide
scale-down order;
candidate indexes skip whatever other clusters hold. Tying names to ordinals
(`hash(cluster, ordinal, attempt)`) would give the same guarantees but two collision
paths to reason about (between ordinals and between attempts); one permutation has
none: the first pass never yields a name twice.

The sequence is infinite in practice. Pass 0 is every adjective-animal pair exactly once
(about 92,000 names); pass *p* (1..98) is again every pair, in another order, with the
suffix `p + 1` (`daring-duck2`), so a cluster that scales up and down for years still
gets fresh names. Words have at most 9 letters, so a name has at most
`constants.MAX_REPLICA_NAME_LENGTH` (21) characters and `<cluster>-<replica>` fits a
DNS label when the cluster name has at most `constants.MAX_CLUSTER_NAME_LENGTH` (41).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterator
from importlib import resources

PASSES = 99  # pass 0 has no suffix; passes 1..98 add the suffixes 2..99
_FEISTEL_ROUNDS = 4


class NamesExhaustedError(RuntimeError):
    """Every name of a cluster's sequence is taken: about nine million names."""


@functools.cache
def adjectives() -> tuple[str, ...]:
    return _words("adjectives.txt")


@functools.cache
def animals() -> tuple[str, ...]:
    return _words("animals.txt")


def _words(filename: str) -> tuple[str, ...]:
    text = resources.files("agent_api").joinpath("words", filename).read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def candidates(cluster: str) -> Iterator[str]:
    """The cluster's candidate names, in order; a pure function of `cluster`.

    Every name appears at most once. The sequence ends only after `PASSES` full passes over
    all adjective-animal pairs.
    """
    adj, ani = adjectives(), animals()
    size = len(adj) * len(ani)
    for pass_no in range(PASSES):
        suffix = "" if pass_no == 0 else str(pass_no + 1)
        key = hashlib.sha256(f"agentclusters.io/names\x00{cluster}\x00{pass_no}".encode()).digest()
        for index in range(size):
            a, b = divmod(_permute(index, size, key), len(ani))
            yield f"{adj[a]}-{ani[b]}{suffix}"


def allocate(cluster: str, count: int, taken: set[str]) -> list[str]:
    """The first `count` candidates of `cluster` that are not in `taken`.

    `taken` must hold every name used by a live, archived or retired member of any cluster
    in the namespace, this cluster's included (from PostgreSQL, not from the bounded
    `status.archived`); that is what makes names unique and never reused.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    chosen = list(itertools.islice((n for n in candidates(cluster) if n not in taken), count))
    if len(chosen) < count:
        raise NamesExhaustedError(
            f"cluster {cluster!r} has no replica names left ({len(chosen)} of {count} found)"
        )
    return chosen


def _permute(index: int, size: int, key: bytes) -> int:
    """A keyed bijection of range(size): Feistel network on 2k bits plus cycle walking.

    Cycle walking (re-encrypting until the value falls inside range(size)) keeps it a
    bijection of the smaller domain; the bit domain is < 4 * size, so it walks < 4 times on
    average.
    """
    half_bits = max(1, ((size - 1).bit_length() + 1) // 2)
    mask = (1 << half_bits) - 1
    value = index
    while True:
        left, right = value >> half_bits, value & mask
        for round_no in range(_FEISTEL_ROUNDS):
            digest = hashlib.sha256(key + bytes((round_no,)) + right.to_bytes(8, "big")).digest()
            left, right = right, left ^ (int.from_bytes(digest[:8], "big") & mask)
        value = (left << half_bits) | right
        if value < size:
            return value


def max_name_length() -> int:
    """Length of the longest name `candidates` can yield (checked against the constant)."""
    return max(map(len, adjectives())) + 1 + max(map(len, animals())) + len(str(PASSES))

