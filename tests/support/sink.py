"""A local HTTP sink for channels: records every POST and answers with scripted statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from devcluster import ports


@dataclass
class Received:
    path: str
    body: Any


@dataclass
class Sink:
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    received: list[Received] = field(default_factory=list)
    port: int = field(default_factory=ports.free_port)
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> Sink:
        async def handler(request: web.Request) -> web.Response:
            self.received.append(Received(request.path, await request.json()))
            status = self.statuses.pop(0) if self.statuses else 200
            return web.Response(status=status, text="ok" if status < 300 else f"sink says {status}")

        app = web.Application()
        app.router.add_post("/{tail:.*}", handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
