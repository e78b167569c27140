"""`python -m bench.chaos` (`make chaos CHAOS_ARGS="--minutes 10 --seed 1"`): one soak on a
devcluster of its own; writes `bench/results/chaos-<date>.json` and its timeline PNG, then
regenerates `bench/RESULTS.md`."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import environment, report
from bench.chaos import render, soak
from bench.chaos.stack import Stack

DEFAULT_LEASE = 10


def soak_result(minutes: float, seed: int, lease_seconds: int, fault_every: float = 6.0,
                keep: bool = False) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="agentclusters-chaos-"))
    stack = Stack(work).start()
    began = time.monotonic()
    try:
        config = soak.SoakConfig(minutes=minutes, seed=seed, lease_seconds=lease_seconds,
                                 fault_every=fault_every)
        result = soak.run(stack, config)
        result["postgres"] = asyncio.run(environment.postgres_facts(stack.postgres.url))
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"] = environment.machine()
    result["command"] = (f"make chaos CHAOS_ARGS=\"--minutes {minutes:g} --seed {seed} "
                         f"--lease {lease_seconds} --fault-every {fault_every:g}\"")
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the fault window")
    parser.add_argument("--seed", type=int, default=1, help="seeds the fault plan and the work durations")
    parser.add_argument("--lease", type=int, default=DEFAULT_LEASE,
                        help="the schedules' spec.limits.leaseSeconds (5 or more)")
    parser.add_argument("--fault-every", type=float, default=6.0,
                        help="mean seconds between replica faults")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    if args.minutes <= 0 or args.lease < 5 or args.fault_every <= 0:
        parser.error("--minutes and --fault-every must be positive and --lease at least 5 "
                     "(the API's minimum for spec.limits.leaseSeconds)")
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(message)s")
    result = soak_result(args.minutes, args.seed, args.lease, args.fault_every, args.keep)
    name = f"chaos-{dt.datetime.now(dt.UTC).date().isoformat()}"
    path = environment.write_result("chaos", result, name.removeprefix("chaos-"))
    print(f"chaos: wrote {path.relative_to(environment.REPO)}")
    figures = result["figures"]
    print(render.summary_line(figures))
    written = report.write()
    print("report: " + ", ".join(str(p.relative_to(environment.REPO)) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
