"""`python -m bench` (`make bench`): run the benchmarks, write their figures, regenerate the report.

Each benchmark writes `bench/results/<name>.json` (`<name>-<tag>.json` with `--tag`), then
`bench/RESULTS.md` and the plots are regenerated from every recorded result. The figures
are written, never asserted: this is not a test suite.

  python -m bench                       # all, full size (tens of minutes on 2 cores)
  python -m bench --quick               # all, small sizes: checks the machinery
  python -m bench --only idle --tag before
  python -m bench --only thousand --replicas 200
  python -m bench --report              # only regenerate RESULTS.md and the plots
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench import chaos, claims, drain, environment, gateway, idle, lateness, report, scale, tenancy, thousand

BENCHMARKS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "claims": claims.run,
    "tenancy": tenancy.run,
    "drain": drain.run,
    "lateness": lateness.run,
    "idle": idle.run,
    "gateway": gateway.run,
    "chaos": chaos.run,  # its own devcluster, PostgreSQL and Redis; 1 minute with --quick
    "scale": scale.run,
    # Last: it brings the most load, and needs PgBouncer.
    "thousand": thousand.run,
}


async def run_all(names: list[str], quick: bool, tag: str | None, replicas: int | None) -> None:
    with environment.durable_postgres() as server:
        bench = environment.Bench(server, quick, tag)
        postgres = await environment.postgres_facts(bench.admin_url)
        for name in names:
            print(f"{name}: running{' (quick)' if quick else ''}", flush=True)
            began = time.monotonic()
            options = {"replica_count": replicas} if name == "thousand" and replicas else {}
            result = await BENCHMARKS[name](bench, **options)
            result = {**result, "machine": environment.machine(), "postgres": postgres,
                      "quick": quick, "tag": tag,
                      "wall_seconds": round(time.monotonic() - began, 1)}
            path = environment.write_result(name, result, tag)
            print(f"{name}: wrote {path.relative_to(environment.REPO)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS),
                        help="run this benchmark (repeatable); default: all")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--tag", help="write <name>-<tag>.json, e.g. `before` for the old scheduler")
    parser.add_argument("--replicas", type=int, help="replicas for `thousand` (default 1000)")
    parser.add_argument("--report", action="store_true",
                        help="only regenerate RESULTS.md and the plots from bench/results/")
    args = parser.parse_args()
    if not args.report:
        asyncio.run(run_all(args.only or list(BENCHMARKS), args.quick, args.tag, args.replicas))
    written = report.write()
    print("report: " + ", ".join(str(p.relative_to(environment.REPO)) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
