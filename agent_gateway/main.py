"""`agentclusters gateway`: serve MCP over streamable HTTP at /mcp (plus /hooks and /healthz),
or over stdio with `--stdio`."""

from __future__ import annotations

import asyncio
import logging
import sys

import uvicorn
import uvloop

from agent_api import logformat, replica_auth
from agent_gateway import auth, deps, server, settings


async def serve_http(config: settings.Settings) -> None:
    async with deps.open_deps(config) as d:
        # Stateless: no MCP session lives in this process, so any gateway replica answers any
        # request (the 2025 handshake's session id would be known to one process only). A
        # tool call's progress notifications still stream on that call's own SSE response;
        # what stateless mode gives up (server-to-client requests, the standalone GET stream)
        # no tool uses.
        mcp_app = server.build_server(d).streamable_http_app(host=config.host, stateless_http=True)
        app = auth.explain_refusals(mcp_app, config)
        # log_config=None: uvicorn's own lines go through the root logger, in the gateway's format.
        # httptools: the C parser; uvicorn's default without it (h11, pure Python) was a
        # tenth of the gateway's CPU under chat load.
        uvicorn_config = uvicorn.Config(app, host=config.host, port=config.port, log_level="info",
                                        lifespan="on", access_log=False, log_config=None, http="httptools")
        await uvicorn.Server(uvicorn_config).serve()


async def serve_stdio(config: settings.Settings) -> None:
    async with deps.open_deps(config) as d:
        await server.build_server(d).run_stdio_async()


def main(argv: list[str] | None = None) -> int:
    args = settings.parser().parse_args(argv)
    config = settings.from_args(args)
    missing = [flag for flag, value in (("--database-url", config.database_url), ("--redis-url", config.redis_url))
               if not value]
    if missing:
        print(f"agentclusters gateway: {', '.join(missing)} (or DATABASE_URL/REDIS_URL) required", file=sys.stderr)
        return 2
    if not config.stdio:
        try:
            replica_auth.master_key(config.replica_auth_key.decode(), who="agentclusters gateway")
        except replica_auth.MissingMasterKey as missing_key:
            print(missing_key, file=sys.stderr)
            return 2
    if not config.token_audience:
        print("agentclusters gateway: --token-audience must not be empty (callers' tokens are checked for it)",
              file=sys.stderr)
        return 2
    # stdout is the MCP channel over stdio: logs go to stderr.
    logformat.configure(config.log_format, level=logging.INFO, stream=sys.stderr)
    if args.stdio:
        asyncio.run(serve_stdio(config))
        return 0
    # uvloop: the event loop in C. Under chat load a quarter of the gateway's Python time was
    # asyncio's own loop, task and transport machinery.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_http(config))
    return 0
