"""`agentclusters dev up|down|status|logs [-f]`: the development stack from the command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from agent_api import logformat
from devcluster import log_follow
from devcluster.stack import Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentclusters dev", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".dev"), help="state directory (default .dev)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start devcluster, PostgreSQL, Redis and the operator in the background")
    sub.add_parser("down", help="stop everything `up` started")
    sub.add_parser("status", help="which parts are running")
    logs = sub.add_parser("logs", help="print (or follow, -f) a component's log, a pod container's log, "
                                       "or without a target those of the operator, the gateway and every replica")
    logs.add_argument("target", nargs="?",
                      help="a component (kube-apiserver, kubelet, operator, gateway, ...) or NAMESPACE/POD; "
                           "none: the operator, the gateway and every replica, each line prefixed with its source")
    logs.add_argument("-c", "--container", help="container name (default: the pod's first)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    logs.add_argument("--tail", type=int, default=None, metavar="N",
                      help="start with the last N lines of each log (default: all)")
    args = parser.parse_args(argv)
    stack = Stack(args.dir.resolve())

    if args.command == "up":
        # Lines for people in the dev stack (`dev logs -f`); the chart's default is json. The
        # operator and the gateway inherit this; set it to json to see what production writes.
        os.environ.setdefault(logformat.FORMAT_ENV, "text")
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
    if args.tail is not None and args.tail < 0:
        parser.error(f"--tail {args.tail}: give a number of lines, 0 or more")
    if args.target is None:
        cluster_dir = stack.root / "cluster"
        if not (cluster_dir / "logs").is_dir():
            print(f"no devcluster logs under {args.dir} (is the stack up? `make dev-up` starts it)", file=sys.stderr)
            return 1
        follower = log_follow.Follower(lambda: log_follow.product_sources(cluster_dir), sys.stdout, tail=args.tail)
    else:
        path = stack.log_path(args.target, args.container)
        if path is None or not path.exists():
            print(f"no log for {args.target!r} under {args.dir} (is the stack up? is the name right?)",
                  file=sys.stderr)
            return 1
        source = log_follow.Source(args.target, path)
        follower = log_follow.Follower(lambda: [source], sys.stdout, prefix=False, tail=args.tail)
    if not args.follow:
        follower.poll(final=True)
        return 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how following ends
        log_follow.follow(follower)
    return 0
