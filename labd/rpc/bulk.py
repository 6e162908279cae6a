"""Bulk side channel: big batches reach a TCP subscriber on a socket of their own.

A frame pushed inside a Cap'n Proto message is handled four times by the daemon
(serialised, copied into the zeroed message, copied by pycapnp into ``bytes``, copied by
the kernel), which caps TCP subscribers at ~0.34× a raw socket (bench/README.md, "RPC").
Remote clients cannot map shared memory (:mod:`labd.rpc.lanes`), so they get the next
best thing: a plain byte stream. The daemon offers a one-time endpoint in the first big
push (the port of a listener on the interface of the connection's own listener and 32
random bytes); the client connects, presents the bytes, and from then on each big batch
is written there as ``seq, length, IPC bytes`` while the push carries only ``seq`` and the
length. The window and latest-wins flow control stay with the pushes: the client
acknowledges a push once it has read its bytes.

The token is the only thing that ties a bulk connection to its subscription: it is
random, single use, valid for :data:`CONNECT_TIMEOUT_S`, and compared in constant time.
On a TLS listener the bulk listener speaks TLS with the same certificate, so nothing goes
in clear text that the user asked to protect. Whatever fails, the subscription falls
back to frames in the message, like a lane that cannot be mapped.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import ssl
import struct

import pyarrow as pa
import trio

log = logging.getLogger("labd.rpc")

TOKEN_BYTES = 32
CONNECT_TIMEOUT_S = 1.0
"""A client gets this long to connect and present its token; then the offer lapses."""
MIN_BULK_BATCH_BYTES = 256 * 1024
"""Smaller batches (readings) go inline: for them the message copies cost microseconds."""
HEADER = struct.Struct("<QQ")
"""Before each batch on the bulk socket: its ``seq`` and byte length (the client checks
both against the push, so a desynchronised stream fails instead of mixing frames up)."""
BULK_UNAVAILABLE = "bulk-unavailable"
"""The error code a client answers a push with when it cannot read the bulk socket."""


class BulkListener:
    """The daemon's bulk endpoint for one TCP listener: one port, shared by all subscriptions."""

    def __init__(self, sock: trio.socket.SocketType, ssl_context: ssl.SSLContext | None) -> None:
        self._listener = trio.SocketListener(sock)
        self._ssl_context = ssl_context
        self._offers: dict[bytes, BulkChannel] = {}
        self.host, self.port = sock.getsockname()[:2]

    @classmethod
    async def open(cls, host: str, ssl_context: ssl.SSLContext | None) -> BulkListener:
        """Listen on a random port of ``host`` (the interface of the RPC listener)."""
        family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
        sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
        try:
            await sock.bind((host, 0))
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        return cls(sock, ssl_context)

    def offer(self, channel: BulkChannel) -> bytes:
        token = secrets.token_bytes(TOKEN_BYTES)
        self._offers[token] = channel
        return token

    def withdraw(self, token: bytes) -> None:
        self._offers.pop(token, None)

    async def serve(self) -> None:
        """Accept bulk connections until cancelled; each gets :data:`CONNECT_TIMEOUT_S`."""
        async with self._listener, trio.open_nursery() as nursery:
            while True:
                stream = await self._listener.accept()
                nursery.start_soon(self._admit, stream)

    async def _admit(self, conn: trio.SocketStream) -> None:
        conn.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
        stream: trio.abc.Stream = conn
        admitted = False
        try:
            with trio.move_on_after(CONNECT_TIMEOUT_S):
                if self._ssl_context is not None:
                    stream = trio.SSLStream(conn, self._ssl_context, server_side=True)
                    await stream.do_handshake()
                token = await _receive_exactly(stream, TOKEN_BYTES)
                channel = self._match(token)
                if channel is None:
                    log.warning("refused a bulk connection: wrong or expired token")
                else:
                    admitted = channel.attach(stream, conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.info("refused a bulk connection: %s", exc)
        finally:
            if not admitted:
                conn.socket.close()

    def _match(self, token: bytes) -> BulkChannel | None:
        for candidate, channel in list(self._offers.items()):
            if hmac.compare_digest(candidate, token):
                del self._offers[candidate]  # one use
                return channel
        return None


class BulkChannel:
    """One subscription's bulk connection: offered, then attached, written in push order."""

    def __init__(self, listener: BulkListener, nursery: trio.Nursery) -> None:
        self._listener = listener
        self.port = listener.port
        self.token = listener.offer(self)
        self._deadline = trio.current_time() + CONNECT_TIMEOUT_S
        self._stream: trio.abc.Stream | None = None
        self._conn: trio.SocketStream | None = None
        self._closed = False
        # Unbounded in type only: the push window bounds what is queued.
        self._send, self._receive = trio.open_memory_channel[tuple[int, pa.Buffer]](float("inf"))
        nursery.start_soon(self._write_queued)

    @property
    def attached(self) -> bool:
        return self._stream is not None and not self._closed

    @property
    def lapsed(self) -> bool:
        """The client did not come in time (or the connection broke)."""
        return self._closed or (self._stream is None and trio.current_time() > self._deadline)

    def attach(self, stream: trio.abc.Stream, conn: trio.SocketStream) -> bool:
        if self._closed or self._stream is not None:
            return False
        self._stream, self._conn = stream, conn
        return True

    def queue(self, seq: int, data: pa.Buffer) -> None:
        """Write ``data`` after everything queued before (pushes are queued in send order)."""
        self._send.send_nowait((seq, data))

    async def _write_queued(self) -> None:
        async for seq, data in self._receive:
            assert self._stream is not None
            try:
                await self._stream.send_all(HEADER.pack(seq, data.size))
                await self._stream.send_all(memoryview(data))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                # The client then fails its push with bulk-unavailable: inline from there.
                log.info("bulk connection broke: %s", exc)
                self.close()
                return

    def close(self) -> None:
        self._closed = True
        self._listener.withdraw(self.token)
        self._send.close()
        if self._conn is not None:
            self._conn.socket.close()


async def _receive_exactly(stream: trio.abc.Stream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise trio.BrokenResourceError("closed before sending its token")
        data += chunk
    return data
