"""The function the throughput and lateness benchmarks schedule: it does nothing, so what is
measured is the scheduling path alone (claim, run bookkeeping, completion).

Referenced from a spec as `python: {entrypoint: bench.noop:noop}`.
"""

from __future__ import annotations


async def noop(context: object) -> None:
    return None
