"""The gateway's settings, from command-line flags with environment fallbacks.

One frozen dataclass, so every module reads the same numbers and tests can build one directly.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field

from agent_api import constants, logformat, models, replica_auth

DEFAULT_AUDIENCE = "agentclusters-gateway"


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    """Kubeconfig the gateway itself uses; None means in-cluster credentials."""
    database_url: str = ""
    redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8090
    public_url: str = ""
    """The URL clients reach the gateway at (the OAuth resource identifier)."""
    default_namespace: str = "default"
    rate_limit_per_minute: int = 120
    """Tool calls one caller may make per minute, across every gateway instance."""
    scale_timeout_seconds: float = 120.0
    webhook_max_body_bytes: int = 1024 * 1024
    runtime_timeout_seconds: float = 330.0
    """Longest wait for a replica's answer (chat or a synchronous webhook run)."""
    auth_cache_seconds: float = 10.0
    """How long a TokenReview or SubjectAccessReview answer is reused."""
    token_audience: str = DEFAULT_AUDIENCE
    """The audience a caller's token must be minted for (`kubectl create token <sa>
    --audience agentclusters-gateway`); TokenReview must confirm it."""
    stdio: bool = False
    """Serving over stdio: the tools act as the kubeconfig's own identity. Over HTTP every
    tool call needs a caller's token; the gateway never acts as itself."""
    replica_auth_key: bytes = field(default=b"", repr=False)
    """The master key replica tokens are derived from (agent_api.replica_auth); required over
    HTTP. Over stdio the tokens are read from each cluster's Secret as the kubeconfig's user."""
    webhook_rate_limit_per_minute: int = 600
    """Deliveries one webhook accepts per minute, across every gateway instance."""
    metrics_port: int = 0
    """Plain-HTTP port for Prometheus' `GET /metrics`, apart from the MCP port an Ingress
    publishes; 0 serves none."""
    metrics_host: str = ""
    """Address the metrics port listens on; empty: the same as `host`."""
    watch_namespaces: tuple[str, ...] = ()
    """The namespaces whose AgentClusters and replica pods the gateway watches into its caches
    (the chart's operator.watchNamespaces, where its rights are per namespace); empty: every
    namespace (its ClusterRoleBinding). Other namespaces are read from the API server per request."""
    log_format: logformat.Format = "json"
    """Log lines as JSON (agent_api.logformat; the chart's default) or text (the devcluster's)."""

    @property
    def mcp_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/") + "/mcp"


def metrics_port(text: str) -> int:
    """A port number, or 0 for no metrics listener."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 1-65535, or 0 to serve no metrics")
    return port


def namespace_list(text: str) -> tuple[str, ...]:
    """Namespaces separated by commas; empty: all of them."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    bad = [name for name in names if not re.fullmatch(models.DNS_LABEL, name) or len(name) > constants.DNS_LABEL_MAX]
    if bad:
        raise argparse.ArgumentTypeError(
            f"{', '.join(repr(b) for b in bad)} is not a namespace name (a DNS label: lowercase letters, digits "
            "and '-'); give namespaces separated by commas, e.g. team-a,team-b, or nothing to watch all")
    return names


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="agentclusters gateway",
                                description="the MCP gateway: tools, chat routing, webhooks")
    p.add_argument("--stdio", action="store_true",
                   help="serve MCP over stdin/stdout as the kubeconfig's own identity")
    p.add_argument("--kubeconfig", default=env("KUBECONFIG"))
    p.add_argument("--database-url", default=env("DATABASE_URL", ""))
    p.add_argument("--redis-url", default=env("REDIS_URL", ""))
    p.add_argument("--host", default=env("GATEWAY_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("GATEWAY_PORT", "8090")))
    p.add_argument("--public-url", default=env("GATEWAY_PUBLIC_URL", ""))
    p.add_argument("--default-namespace", default=env("GATEWAY_DEFAULT_NAMESPACE", "default"))
    p.add_argument("--rate-limit-per-minute", type=int,
                   default=int(env("GATEWAY_RATE_LIMIT_PER_MINUTE", "120")))
    p.add_argument("--scale-timeout-seconds", type=float, default=120.0)
    p.add_argument("--webhook-max-body-bytes", type=int, default=1024 * 1024)
    p.add_argument("--webhook-rate-limit-per-minute", type=int,
                   default=int(env("GATEWAY_WEBHOOK_RATE_LIMIT_PER_MINUTE", "600")))
    p.add_argument("--token-audience", default=env("GATEWAY_TOKEN_AUDIENCE", DEFAULT_AUDIENCE),
                   help="the audience callers' tokens must be minted for (kubectl create token --audience)")
    p.add_argument("--metrics-port", type=metrics_port, default=metrics_port(env("GATEWAY_METRICS_PORT", "0")),
                   help="serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0: not served)")
    p.add_argument("--metrics-host", default=env("GATEWAY_METRICS_HOST", ""),
                   help="address of the metrics port (default: --host)")
    p.add_argument("--watch-namespaces", type=namespace_list,
                   default=namespace_list(env("GATEWAY_WATCH_NAMESPACES", "")),
                   help="comma-separated namespaces to watch AgentClusters and replica pods in (default: all)")
    logformat.add_argument(p)
    return p


def from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        kubeconfig=args.kubeconfig or None, database_url=args.database_url, redis_url=args.redis_url,
        host=args.host, port=args.port, public_url=args.public_url,
        default_namespace=args.default_namespace, rate_limit_per_minute=args.rate_limit_per_minute,
        scale_timeout_seconds=args.scale_timeout_seconds,
        webhook_max_body_bytes=args.webhook_max_body_bytes,
        webhook_rate_limit_per_minute=args.webhook_rate_limit_per_minute,
        token_audience=args.token_audience, stdio=args.stdio, log_format=args.log_format,
        metrics_port=args.metrics_port, metrics_host=args.metrics_host, watch_namespaces=args.watch_namespaces,
        # From the environment only: a flag would show the key in the process list.
        replica_auth_key=os.environ.get(replica_auth.MASTER_KEY_ENV, "").encode(),
    )
