"""The client's end of a subscription's bulk connection (:mod:`labd.rpc.bulk`).

The daemon offers the connection in a push; :meth:`BulkReader.connect` opens it in the
background while that push's batch is delivered from the message. Later pushes name a
length instead of carrying bytes, and :meth:`BulkReader.read` takes that batch off the
connection before the push is acknowledged (so the window still bounds what is in flight).
"""

from __future__ import annotations

import socket
import ssl

import pyarrow as pa
import trio

from labd.rpc.bulk import CONNECT_TIMEOUT_S, HEADER, receive_exactly, receive_into, shut_down
from labd.rpc.sockets import tune


class BulkUnavailable(Exception):
    """The bulk connection could not be opened or read; the daemon falls back to inline."""


class BulkReader:
    """One subscription's bulk connection to ``host``, TLS when ``ssl_context`` is given.

    Connecting and reading happen in a worker thread with blocking calls: an 8 MiB frame is
    then one ``recv_into`` loop in C, not dozens of turns of the event loops.
    """

    def __init__(
        self, host: str, ssl_context: ssl.SSLContext | None, server_hostname: str | None
    ) -> None:
        self._host = host
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._sock: socket.socket | None = None
        self._closed = False
        self._failure: str | None = None
        self._ready = trio.Event()
        self._lock = trio.Lock()
        self._thread = trio.CapacityLimiter(1)
        self._early: dict[int, pa.Buffer] = {}
        self.batches = 0
        """Batches that came on the bulk connection."""

    async def connect(self, port: int, token: bytes) -> None:
        """Open the connection and present ``token``; a failure is kept for :meth:`read`."""
        try:
            sock = await trio.to_thread.run_sync(
                self._connect, port, token, limiter=self._thread, abandon_on_cancel=True
            )
            if self._closed:  # the subscription ended while connecting
                shut_down(sock)
            else:
                self._sock = sock
        except OSError as exc:  # ssl.SSLError and timeouts are OSErrors too
            self._failure = f"cannot connect to {self._host}:{port}: {exc or type(exc).__name__}"
        finally:
            self._ready.set()

    def _connect(self, port: int, token: bytes) -> socket.socket:
        sock = socket.create_connection((self._host, port), timeout=CONNECT_TIMEOUT_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            tune(sock)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self._server_hostname)
            sock.sendall(token)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return sock

    async def read(self, seq: int, length: int) -> pa.Buffer:
        """The batch of push ``seq`` (``length`` bytes); raises :class:`BulkUnavailable`.

        Pushes may be handled out of order; the connection is read in order, so a batch
        read ahead of its push waits in ``_early``.
        """
        with trio.move_on_after(10 * CONNECT_TIMEOUT_S):
            await self._ready.wait()
        async with self._lock:
            while seq not in self._early:
                sock = self._sock
                if sock is None:
                    raise BulkUnavailable(self._failure or "the bulk connection is not open")
                try:
                    got_seq, data = await trio.to_thread.run_sync(
                        _receive_batch, sock, limiter=self._thread, abandon_on_cancel=True
                    )
                except OSError as exc:
                    self.close()
                    raise BulkUnavailable(f"reading the bulk connection failed: {exc}") from None
                if got_seq > seq or (got_seq == seq and len(data) != length):
                    self.close()
                    raise BulkUnavailable(
                        f"out of step: expected batch {seq} ({length} bytes),"
                        f" got {got_seq} ({len(data)} bytes)"
                    )
                self._early[got_seq] = data
            self.batches += 1
            return self._early.pop(seq)

    def close(self) -> None:
        self._closed = True
        if self._sock is not None:
            shut_down(self._sock)
            self._sock = None


def _receive_batch(sock: socket.socket) -> tuple[int, pa.Buffer]:
    seq, length = HEADER.unpack(receive_exactly(sock, HEADER.size))
    # Arrow's allocator: recycled memory, not zeroed (a fresh bytearray would zero 8 MiB
    # and fault its pages in first); the batch is decoded from it without a copy.
    data = pa.allocate_buffer(length)
    receive_into(sock, memoryview(data))
    return seq, data
