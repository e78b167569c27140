"""`agentclusters dev up|down|status|logs`: the development stack from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devcluster.stack import Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentclusters dev", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".dev"), help="state directory (default .dev)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start devcluster, PostgreSQL, Redis and the operator in the background")
    sub.add_parser("down", help="stop everything `up` started")
    sub.add_parser("status", help="which parts are running")
    logs = sub.add_parser("logs", help="print a component's log or a pod container's log")
    logs.add_argument("target", help="a component (kube-apiserver, kubelet, operator, ...) or NAMESPACE/POD")
    logs.add_argument("-c", "--container", help="container name (default: the pod's first)")
    args = parser.parse_args(argv)
    stack = Stack(args.dir.resolve())

    if args.command == "up":
        print("starting the devcluster (a cold start builds Kubernetes first: many minutes)...",
              file=sys.stderr)
        env = stack.up()
        print(f"ready. Use it with:  source {stack.env_file}")
        for key, value in env.items():
            print(f"  {key}={value}")
        return 0
    if args.command == "down":
        stack.down()
        print("stopped")
        return 0
    if args.command == "status":
        status = stack.status()
        if not status:
            print("not running (start it with `make dev-up`)")
            return 1
        for name, alive in status.items():
            print(f"{name:<26} {'running' if alive else 'STOPPED'}")
        return 0 if all(status.values()) else 1
    path = stack.log_path(args.target, args.container)
    if path is None or not path.exists():
        print(f"no log for {args.target!r} under {args.dir} (is the stack up? is the name right?)",
              file=sys.stderr)
        return 1
    sys.stdout.write(path.read_text(errors="replace"))
    return 0
