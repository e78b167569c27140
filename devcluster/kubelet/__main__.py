"""`python -m devcluster.kubelet --kubeconfig K --node-name N --state-dir D`

Registers node N and runs the pods the scheduler binds to it as local processes. SIGTERM or
SIGINT stops every pod process (SIGTERM, SIGKILL after a few seconds), then exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from devcluster.kubelet.addresses import HOST_IP, AddressAllocator, claim_block
from devcluster.kubelet.api import Client
from devcluster.kubelet.containers import ProcessRegistry
from devcluster.kubelet.node import DEFAULT_CAPACITY, NodeAgent
from devcluster.kubelet.pod_worker import WorkerContext, base_environment
from devcluster.kubelet.pods import SHUTDOWN_GRACE, PodManager

log = logging.getLogger("devcluster.kubelet")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devcluster.kubelet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True, type=Path,
                        help="credentials of identity system:node:<node-name>")
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--state-dir", required=True, type=Path,
                        help="pod logs go to <state-dir>/pods/<namespace>_<pod>/<container>.log")
    parser.add_argument("--cpu", default=DEFAULT_CAPACITY["cpu"])
    parser.add_argument("--memory", default=DEFAULT_CAPACITY["memory"])
    parser.add_argument("--pods", default=DEFAULT_CAPACITY["pods"])
    parser.add_argument("--shutdown-grace", type=float, default=SHUTDOWN_GRACE,
                        help="seconds pod processes get between SIGTERM and SIGKILL on exit")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    state_dir = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    registry = ProcessRegistry(state_dir / "run")
    leftovers = registry.kill_leftovers()
    if leftovers:
        log.warning("killed process groups left behind by a previous kubelet: %s", leftovers)

    client = Client(args.kubeconfig)
    capacity = {**DEFAULT_CAPACITY, "cpu": args.cpu, "memory": args.memory, "pods": args.pods}
    node = NodeAgent(client, args.node_name, capacity=capacity, host_ip=HOST_IP)
    while True:
        try:
            node.register()
            break
        except Exception as exc:  # the API server may still be starting
            log.warning("registering node %s failed (retrying): %s", args.node_name, exc)
            if stop.wait(1.0):
                return 0
    node.start()

    ctx = WorkerContext(
        client=client, node_name=args.node_name, state_dir=state_dir,
        addresses=AddressAllocator(*claim_block()), registry=registry, host_ip=HOST_IP,
        base_env=base_environment(client.server), node_allocatable=capacity,
    )
    manager = PodManager(ctx).start()
    log.info("kubelet for node %s running (state in %s)", args.node_name, state_dir)
    while not stop.wait(1.0):
        if not manager.thread.is_alive():
            log.error("the pod manager stopped unexpectedly; exiting")
            break
    started = time.monotonic()
    node.stop()
    manager.stop(args.shutdown_grace)
    log.info("all pod processes stopped in %.1fs; bye", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
