"""`agentclusters operator`: run the AgentCluster operator."""

from __future__ import annotations

import argparse
import asyncio
import os

import kopf

from agent_api import logformat, replica_auth
from agent_operator import handlers, settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentclusters operator", description=__doc__)
    parser.add_argument("--config", help=f"settings YAML (default: ${settings.ENV_CONFIG_FILE})")
    parser.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable; default: all namespaces)")
    parser.add_argument("--verbose", action="store_true")
    logformat.add_argument(parser)
    args = parser.parse_args(argv)

    # kopf's own formats: its JSON has the keys of agent_api.logformat, and `object` on lines
    # about one AgentCluster; its text prefixes those lines with [namespace/name].
    kopf.configure(verbose=args.verbose, log_refkey="object", log_prefix=None,
                   log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's own login reads it too
    operator_settings = settings.load(args.config)
    if not operator_settings.database_url:
        parser.error("no database: set databaseUrl in the settings file or DATABASE_URL")
    try:
        replica_auth.master_key(operator_settings.replica_auth_key, who="agentclusters operator")
    except replica_auth.MissingMasterKey as missing:
        parser.error(str(missing))

    registry = kopf.OperatorRegistry()
    handlers.Operator(operator_settings, args.kubeconfig, args.namespace).register(registry)
    asyncio.run(kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
    ))
    return 0
