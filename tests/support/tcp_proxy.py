"""A TCP proxy in front of PostgreSQL that injects network faults for real.

The runtime's promises under a network partition, a failed-over host or a lost COMMIT reply
can only be tested by breaking the network between a replica and PostgreSQL, never by
patching the code under test. A replica whose `DATABASE_URL` points at this proxy keeps
talking to the real server until the test switches the proxy to another mode:

- `stall()`: half-open. Every connection stays open and nothing is forwarded in either
  direction, not even a close; new connections are accepted and get nothing either. This is
  what a partition or a host that vanished looks like from the client: no error, just silence.
- `resume()`: forward again; whatever was held back (data, a close) is delivered.
- `drop()`: close every connection and refuse new ones until `resume()`.
- `lose_reply_after(pattern)`: one shot. Once a client sends a message containing `pattern`,
  the server's answers to it and to what follows are held back one request cycle at a time
  (a cycle is what the server sends for one Sync or simple Query, up to its ReadyForQuery).
  The first such cycle that executes something (a simple Query, or an Execute before the
  Sync), succeeds and ends with the transaction status 'I' (idle: the transaction ended, it
  committed) is swallowed and the client's connection is closed: the server has committed,
  the client never learns it. Other cycles are delivered when their ReadyForQuery arrives (a
  statement inside a transaction block gets its answer, and the client goes on to COMMIT).
  Answers to a Flush (asyncpg prepares a statement with Parse, Describe, Flush and waits for
  them before Bind, Execute, Sync) belong to no cycle and are delivered at once; holding them
  would deadlock the client.
- `hold_reply_after(pattern)`: one shot. Once a client sends a message containing `pattern`,
  the answer to it is held back on that connection from its ReadyForQuery on (the first one
  at or after that message), with everything the server sends after it, until `resume()`:
  one connection's path breaks just as the server has done the work. The client waits; the
  server has committed (ReadyForQuery 'I') or waits inside the transaction ('T'). If the
  session ends meanwhile (`pg_terminate_backend`, a failover, or for 'T' the server's own
  `idle_in_transaction_session_timeout`), `resume()` delivers the answer, the server's FATAL
  error and the close together, as a healed network would.

It runs in a thread with its own event loop, so a test that blocks (pg_ctl, a subprocess
wait) never stalls the proxy by accident, and control calls are plain method calls.

The PostgreSQL framing it needs: after the startup packet, every message in either direction
is a type byte and an int32 length (which counts itself). Before it, a client may send an
SSLRequest or GSSENCRequest, which the server answers with one untyped byte ('N' = no, which
is what asyncpg's default `sslmode=prefer` gets from the test servers, which have no TLS);
after an 'S' or 'G' the stream is encrypted and the proxy only forwards it. The startup
itself is a cycle: it ends with the server's first ReadyForQuery.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from devcluster import ports

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
T = TypeVar("T")


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection, and where each stream is."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    startup_done: bool = False
    client_buf: bytearray = field(default_factory=bytearray)  # an incomplete client message
    server_buf: bytearray = field(default_factory=bytearray)  # an incomplete server message
    single_byte_replies: int = 0  # answers to SSLRequest/GSSENCRequest still to come
    opaque: bool = False  # encrypted or a cancel request: forwarded, never parsed
    # Per cycle the client asked for (a Sync or a Query; the startup is cycle 0): whether
    # it executes a statement (a Query, or an Execute since the previous Sync).
    cycles_executing: list[bool] = field(default_factory=list)
    executes: bool = False  # an Execute was sent since the last Sync
    cycles_answered: int = 0  # ReadyForQuery messages the server sent
    armed_after: int | None = None  # the lose-reply rule holds cycles past this number
    held: bytearray = field(default_factory=bytearray)  # the current held cycle
    held_failed: bool = False  # the held cycle holds an ErrorResponse
    hold_after: int | None = None  # the hold rule holds from the first ReadyForQuery of
    # this cycle number or a later one
    holding: bool = False  # the hold rule fired: server bytes go to `backlog`
    backlog: bytearray = field(default_factory=bytearray)
    server_closed: bool = False  # the server closed while holding: close on release
    closed: bool = False

    def close(self, abort: bool = False) -> None:
        """Close both sides: flushing what was written (an end of stream passed on), or at
        once (`abort`, a dropped connection)."""
        self.closed = True
        for writer in (self.client, self.upstream):
            if abort:
                writer.transport.abort()
            else:
                writer.close()


class TcpProxy:
    """Listens on 127.0.0.1:`port` and forwards to `upstream_host`:`upstream_port`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = "127.0.0.1"
        self.port = port or ports.free_port()
        self.replies_lost = threading.Event()  # set when `lose_reply_after` has fired
        self.holding = threading.Event()  # set when `hold_reply_after` has fired
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._links: set[_Link] = set()
        self._serving: set[asyncio.Task] = set()
        self._lose_pattern: bytes | None = None
        self._hold_pattern: bytes | None = None

    # -- control, from any thread ---------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def url(self, database_url: str) -> str:
        """`database_url` (a server behind this proxy) with the proxy's host and port."""
        parts = urlsplit(database_url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}{self.host}:{self.port}"))

    def stall(self) -> None:
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        self._call(self._resume())

    def drop(self) -> None:
        self._call(self._drop())

    def lose_reply_after(self, pattern: bytes) -> None:
        if not pattern:
            raise ValueError("an empty pattern would match the first message")
        self.replies_lost.clear()
        self._call(self._set_lose_pattern(pattern))

    def hold_reply_after(self, pattern: bytes) -> None:
        if not pattern:
            raise ValueError("an empty pattern would match the first message")
        self.holding.clear()
        self._call(self._set_hold_pattern(pattern))

    def held_ports(self) -> set[int]:
        """`pg_stat_activity.client_port` of the backends whose answers are held back."""
        return self._call(self._upstream_ports(holding=True))

    def upstream_ports(self) -> set[int]:
        """The local ports of the proxy's server connections: `pg_stat_activity.client_port`
        of the backends serving clients of this proxy."""
        return self._call(self._upstream_ports())

    def connections(self) -> int:
        return self._call(self._count())

    def _call(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    # -- on the proxy's loop ----------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def _stop(self) -> None:
        await self._drop()
        self._flowing.set()  # pumps held at the gate see their link closed and return
        if self._serving:
            await asyncio.wait(self._serving, timeout=5)

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _resume(self) -> None:
        await self._listen()
        self._flowing.set()
        for link in list(self._links):
            if link.holding:
                link.holding = False
                link.client.write(bytes(link.backlog))
                link.backlog.clear()
                if link.server_closed:
                    link.close()

    async def _drop(self) -> None:
        if self._server is not None:
            self._server.close()  # refuses new connections; the open ones are closed below
            self._server = None
        for link in list(self._links):
            link.close(abort=True)

    async def _set_lose_pattern(self, pattern: bytes) -> None:
        self._lose_pattern = pattern

    async def _set_hold_pattern(self, pattern: bytes) -> None:
        self._hold_pattern = pattern

    async def _upstream_ports(self, holding: bool = False) -> set[int]:
        found = set()
        for link in self._links:
            name = link.upstream.get_extra_info("sockname")
            if name and not link.closed and (link.holding or not holding):
                found.add(name[1])
        return found

    async def _count(self) -> int:
        return len([link for link in self._links if not link.closed])

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port)
        except OSError:
            client_writer.transport.abort()  # as if the server were not there
            return
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)
        task = asyncio.current_task()
        self._serving.add(task)
        try:
            await asyncio.gather(self._pump_client(link, client_reader),
                                 self._pump_server(link, upstream_reader))
        finally:
            self._links.discard(link)
            self._serving.discard(task)
            if not link.closed:
                link.close()

    async def _pump_client(self, link: _Link, reader: asyncio.StreamReader) -> None:
        while not link.closed:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            await self._flowing.wait()
            if link.closed:
                return
            if not data:
                link.close()
                return
            if not link.opaque:
                # Before forwarding: the server can answer nothing it has not received, so
                # the counts and the rule are up to date when its answers come back.
                self._follow_client(link, data)
            link.upstream.write(data)

    def _follow_client(self, link: _Link, data: bytes) -> None:
        buf = link.client_buf
        buf += data
        while not link.startup_done and len(buf) >= 8:
            length, code = struct.unpack("!ii", buf[:8])
            if len(buf) < length:
                return
            del buf[:length]
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                link.single_byte_replies += 1
            elif code == CANCEL_REQUEST:
                link.opaque = True  # the server answers a cancel request by closing
                return
            else:
                link.startup_done = True
                link.cycles_executing.append(False)  # authentication, up to ReadyForQuery
        while link.startup_done and len(buf) >= 5:
            (length,) = struct.unpack("!i", buf[1:5])
            if len(buf) < 1 + length:
                return
            message = bytes(buf[:1 + length])
            del buf[:1 + length]
            pattern = self._lose_pattern
            if pattern is not None and pattern in message:
                self._lose_pattern = None
                link.armed_after = len(link.cycles_executing)
            pattern = self._hold_pattern
            if pattern is not None and pattern in message:
                self._hold_pattern = None
                link.hold_after = len(link.cycles_executing)
            kind = message[:1]
            if kind == b"E":
                link.executes = True
            elif kind == b"S":
                link.cycles_executing.append(link.executes)
                link.executes = False
            elif kind == b"Q":
                link.cycles_executing.append(True)

    async def _pump_server(self, link: _Link, reader: asyncio.StreamReader) -> None:
        while not link.closed:
            try:
                data = await reader.read(65536)
            except OSError:
                data = b""
            await self._flowing.wait()
            if link.closed:
                return
            if not data:
                if link.holding:
                    link.server_closed = True  # the client learns it on release
                    return
                link.close()
                return
            if link.opaque:
                link.client.write(data)
                continue
            outgoing = self._frame_server_bytes(link, data)
            if link.holding:
                link.backlog += outgoing
            elif outgoing:
                link.client.write(outgoing)
            if link.closed:
                return

    def _frame_server_bytes(self, link: _Link, data: bytes) -> bytes:
        """Split the server's bytes into messages; return what the client may see now."""
        buf = link.server_buf
        buf += data
        outgoing = bytearray()
        while buf:
            if link.single_byte_replies:
                answer = bytes(buf[:1])
                del buf[:1]
                link.single_byte_replies -= 1
                outgoing += answer
                if answer in (b"S", b"G"):
                    link.opaque = True  # TLS or GSS from here on: forwarded, never parsed
                    outgoing += buf
                    buf.clear()
                continue
            if len(buf) < 5:
                break
            (length,) = struct.unpack("!i", buf[1:5])
            if len(buf) < 1 + length:
                break
            message = bytes(buf[:1 + length])
            del buf[:1 + length]
            kind = message[:1]
            cycle = link.cycles_answered
            in_cycle = len(link.cycles_executing) > cycle  # else: answers to a Flush
            if (kind == b"Z" and link.hold_after is not None and cycle >= link.hold_after
                    and not link.holding):
                link.holding = True
                link.hold_after = None
                self.holding.set()
                link.client.write(bytes(outgoing))  # what came before is not held
                outgoing.clear()
            if link.armed_after is None or not in_cycle or cycle < link.armed_after:
                outgoing += message
                if kind == b"Z" and in_cycle:
                    link.cycles_answered += 1
                continue
            link.held += message
            link.held_failed = link.held_failed or kind == b"E"
            if kind != b"Z":
                continue
            link.cycles_answered += 1
            if message[5:6] == b"I" and link.cycles_executing[cycle] and not link.held_failed:
                # Committed on the server: drop the answer, then the connection.
                link.client.write(bytes(outgoing))
                link.close()
                self.replies_lost.set()
                return b""
            outgoing += link.held
            link.held.clear()
            link.held_failed = False
        return bytes(outgoing)
