"""The client's end of a subscription's bulk connection (:mod:`labd.rpc.bulk`).

The daemon offers the connection in a push; :meth:`BulkReader.connect` opens it in the
background while that push's batch is delivered from the message. Later pushes name a
length instead of carrying bytes, and :meth:`BulkReader.read` takes that batch off the
connection before the push is acknowledged (so the window still bounds what is in flight).

All of it runs in one worker thread per subscription with blocking calls, submitted from
the push handlers in the order the pushes arrive (asyncio runs them in that order, and
the daemon writes the batches in that order): the connection is read front to back with
no lock and no bookkeeping, and an 8 MiB frame is one ``recv_into`` loop in C.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from labd.contract.bulk import CONNECT_TIMEOUT_S, HEADER, receive_exactly, receive_into, shut_down
from labd.contract.sockets import tune


class BulkUnavailable(Exception):
    """The bulk connection could not be opened or read; the daemon falls back to inline."""


class BulkReader:
    """One subscription's bulk connection to ``host``, TLS when ``ssl_context`` is given."""

    def __init__(
        self, host: str, ssl_context: ssl.SSLContext | None, server_hostname: str | None
    ) -> None:
        self._host = host
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._sock: socket.socket | None = None
        self._closed = False
        self._failure: str | None = None
        self._thread: ThreadPoolExecutor | None = None
        self.batches = 0
        """Batches that came on the bulk connection."""

    def connect(self, port: int, token: bytes) -> None:
        """Start opening the connection and presenting ``token`` (in the worker thread);
        a failure is kept for :meth:`read` to report."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="labd-bulk")
            self._thread.submit(self._connect, port, token)

    def _connect(self, port: int, token: bytes) -> None:
        try:
            sock = socket.create_connection((self._host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            self._failure = f"cannot connect to {self._host}:{port}: {exc}"
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            tune(sock)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self._server_hostname)
            sock.sendall(token)
            sock.settimeout(None)
        except OSError as exc:  # ssl.SSLError and timeouts are OSErrors too
            sock.close()
            self._failure = f"cannot connect to {self._host}:{port}: {exc or type(exc).__name__}"
            return
        if self._closed:  # the subscription ended while connecting
            shut_down(sock)
        else:
            self._sock = sock

    async def read(self, seq: int, length: int) -> pa.Buffer:
        """The batch of push ``seq`` (``length`` bytes); raises :class:`BulkUnavailable`.

        Call it (asyncio) in the order the pushes arrive; it queues the read at once.
        """
        if self._thread is None:
            raise BulkUnavailable("no bulk connection was offered")
        loop = asyncio.get_running_loop()
        got_seq, data = await loop.run_in_executor(self._thread, self._receive_batch)
        if got_seq != seq or data.size != length:
            self.close()
            raise BulkUnavailable(
                f"out of step: expected batch {seq} ({length} bytes),"
                f" got {got_seq} ({data.size} bytes)"
            )
        self.batches += 1
        return data

    def _receive_batch(self) -> tuple[int, pa.Buffer]:
        sock = self._sock
        if sock is None:
            raise BulkUnavailable(self._failure or "the bulk connection is closed")
        try:
            seq, length = HEADER.unpack(receive_exactly(sock, HEADER.size))
            # Arrow's allocator: recycled memory, not zeroed (a fresh bytearray would zero
            # 8 MiB and fault its pages in first); the batch is decoded without a copy.
            data = pa.allocate_buffer(length)
            receive_into(sock, memoryview(data))
        except OSError as exc:
            self.close()
            raise BulkUnavailable(f"reading the bulk connection failed: {exc}") from None
        return seq, data

    def close(self) -> None:
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            shut_down(sock)
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
