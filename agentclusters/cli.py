"""`agentclusters <subcommand> ...`: dispatch to the role that implements it."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

DISTRIBUTION = "agent-clusters"  # pyproject.toml's project name

# subcommand -> ("module:function", one-line help). The function takes argv and returns
# an exit code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("agent_operator.main:main", "run the operator (kopf) against the current cluster"),
    "runtime": ("agent_runtime.main:main", "run one agent replica (inside an agent pod)"),
    "gateway": ("agent_gateway.main:main", "serve the MCP gateway (tools, chat routing, webhooks; --stdio)"),
    "migrate": ("agent_api.db.migrate:main", "apply database migrations to $DATABASE_URL"),
    "crds": ("agent_api.crd:main", "write the CRD YAML generated from agent_api"),
    "dev": ("devcluster.cli:main", "devcluster: up | down | status | logs"),
    "demo": ("devcluster.demo:main", "bring up the devcluster and show the product working"),
}


def usage() -> str:
    lines = ["usage: agentclusters <subcommand> [args...]", "       agentclusters --version", "",
             "subcommands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("--version", "-V"):
        # The installed package's metadata: the same version pip and the image report.
        print(f"agentclusters {importlib.metadata.version(DISTRIBUTION)}")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"agentclusters: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name = SUBCOMMANDS[name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)
