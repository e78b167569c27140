"""One aiohttp handler served on 127.0.0.1 from a thread with its own event loop.

The recorders (tests/support/recorder.py, bench/chaos/recorder.py) are witnesses outside the
system: a test or driver that blocks for a moment (pg_ctl, a subprocess wait, kubectl) must not
delay an answer or the moment a hang-up is noticed, hence a loop of their own. The handler is
cancelled when the client hangs up (`handler_cancellation`): that is how an aborted execution
is seen.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

from devcluster import ports

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ThreadedEndpoint:
    def __init__(self, name: str, path: str, handler: Handler, port: int | None = None,
                 backlog: int = 128) -> None:
        self.port = port if port is not None else ports.free_port()
        self.path = path
        self._handler = handler
        self._backlog = backlog
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", self.path, self._handler)  # every method an http function may use
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=self._backlog).start()
