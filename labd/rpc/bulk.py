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

import contextlib
import dataclasses
import hmac
import logging
import math
import secrets
import socket
import ssl
import time
from typing import Any

import outcome
import pyarrow as pa
import trio

from labd.contract.bulk import (
    CONNECT_TIMEOUT_S,
    HEADER,
    TOKEN_BYTES,
    shut_down,
)
from labd.contract.sockets import tune
from labd.rpc.admission import Door, Gate
from labd.rpc.limits import DEFAULT_LIMITS, Limits, ThrottledLog
from labd.rpc.sockets import bind_tcp, serve

log = logging.getLogger("labd.rpc")

MIN_BULK_BATCH_BYTES = 256 * 1024
"""Smaller batches (readings) go inline: for them the message copies cost microseconds."""


class BulkListener:
    """The daemon's bulk endpoint for one TCP listener: one port, shared by all subscriptions."""

    def __init__(
        self, sock: socket.socket, ssl_context: ssl.SSLContext | None, limits: Limits
    ) -> None:
        self._sock = sock
        self._ssl_context = ssl_context
        self._offers: dict[bytes, BulkChannel] = {}
        self._admitting = trio.CapacityLimiter(8)
        """Threads for handshakes: a flood of connections cannot take trio's shared ones."""
        self._threads = trio.CapacityLimiter(math.inf)
        """What ``to_thread`` draws on once a token of ``_admitting`` is held (so it never
        waits a second time, past the deadline)."""
        self.host, self.port = sock.getsockname()[:2]
        # A connection counts until it is attached (then its subscription owns it) and
        # gets CONNECT_TIMEOUT_S from its accept, its wait for a thread included.
        self._door = Door(
            f"bulk port {self.host}:{self.port}",
            dataclasses.replace(limits, auth_timeout_s=CONNECT_TIMEOUT_S),
        )
        self._log_refusal = ThrottledLog(logging.INFO)
        self._log_wrong_token = ThrottledLog()

    @classmethod
    async def open(
        cls, host: str, ssl_context: ssl.SSLContext | None, limits: Limits = DEFAULT_LIMITS
    ) -> BulkListener:
        """Listen on a random port of ``host`` (the interface of the RPC listener)."""
        sock = (await bind_tcp(host, 0))[0]
        return cls(sock, ssl_context, limits)

    def offer(self, channel: BulkChannel) -> bytes:
        token = secrets.token_bytes(TOKEN_BYTES)
        self._offers[token] = channel
        return token

    def withdraw(self, token: bytes) -> None:
        self._offers.pop(token, None)

    async def serve(self) -> None:
        """Accept bulk connections until cancelled; each gets :data:`CONNECT_TIMEOUT_S`."""
        with self._sock:
            async with trio.open_nursery() as nursery:
                await serve(self._sock, self._door, self._admit, nursery)

    async def _admit(self, sock: socket.socket, gate: Gate) -> None:
        try:
            with trio.move_on_at(gate.deadline) as waiting:
                await self._admitting.acquire()
        except BaseException:  # the daemon is stopping
            sock.close()
            raise
        if waiting.cancelled_caught:
            self._log_refusal("refused a bulk connection: no handshake thread free in time")
            sock.close()
            return
        try:
            # Not cancellable, but over by the deadline: the socket is shut down then.
            with trio.CancelScope(shield=True):
                result = await self._handshake_in_thread(sock, gate.deadline)
        finally:
            self._admitting.release()
        try:
            sock, token = result.unwrap()
        except OSError as exc:  # ssl.SSLError and timeouts are OSErrors too
            self._log_refusal("refused a bulk connection: %s", exc or type(exc).__name__)
            sock.close()
            return
        channel = self._match(token)
        if channel is None:
            self._log_wrong_token("refused a bulk connection: wrong or expired token")
        elif channel.attach(sock):
            return
        sock.close()

    async def _handshake_in_thread(
        self, sock: socket.socket, deadline: float
    ) -> outcome.Outcome[tuple[socket.socket, bytes]]:
        """:meth:`_handshake` in a worker thread, the socket shut down at ``deadline`` (a
        peer that trickles its TLS handshake cannot hold the thread longer)."""
        fd = sock.fileno()
        done = False

        async def cut_at_deadline() -> None:
            await trio.sleep_until(deadline)
            if not done:
                _shut_down_fd(fd)  # the thread still runs, so ``fd`` is still this socket

        sock.settimeout(CONNECT_TIMEOUT_S)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cut_at_deadline)
            result = await outcome.acapture(self._handshake_thread, sock)
            done = True
            nursery.cancel_scope.cancel()
        return result

    async def _handshake_thread(self, sock: socket.socket) -> tuple[socket.socket, bytes]:
        return await trio.to_thread.run_sync(self._handshake, sock, limiter=self._threads)

    def _handshake(self, sock: socket.socket) -> tuple[socket.socket, bytes]:
        """In a worker thread: TLS if configured, then the token (all within the timeout)."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        if self._ssl_context is not None:
            sock = self._ssl_context.wrap_socket(sock, server_side=True)
        token = bytearray()
        try:
            while len(token) < TOKEN_BYTES:  # against a peer that trickles: one deadline
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(TOKEN_BYTES - len(token))
                if not chunk:
                    raise ConnectionResetError("closed before sending its token")
                token += chunk
        except BaseException:
            sock.close()
            raise
        return sock, bytes(token)

    def _match(self, token: bytes) -> BulkChannel | None:
        for candidate, channel in list(self._offers.items()):
            if hmac.compare_digest(candidate, token):
                del self._offers[candidate]  # one use
                return channel
        return None


class BulkChannel:
    """One subscription's bulk connection: offered, then attached, written in push order.

    The bytes are written by a worker thread with a blocking ``sendall`` (TLS encryption
    included), so the Trio loop neither waits nor spends its time on them.
    """

    def __init__(self, listener: BulkListener, nursery: trio.Nursery) -> None:
        self._listener = listener
        self.port = listener.port
        self.token = listener.offer(self)
        self._deadline = trio.current_time() + CONNECT_TIMEOUT_S
        self._sock: socket.socket | None = None
        self._closed = False
        # Unbounded in type only: the subscriber's window and byte budget bound what is
        # queued (labd.rpc.subscriptions.SubscriberLimits).
        self._send, self._receive = trio.open_memory_channel[tuple[int, pa.RecordBatch, int]](
            float("inf")
        )
        self._thread = trio.CapacityLimiter(1)  # its own: not one of trio's shared 40
        nursery.start_soon(self._write_queued)

    @property
    def attached(self) -> bool:
        return self._sock is not None and not self._closed

    @property
    def lapsed(self) -> bool:
        """The client did not come in time (or the connection broke)."""
        return self._closed or (self._sock is None and trio.current_time() > self._deadline)

    def attach(self, sock: socket.socket) -> bool:
        if self._closed or self._sock is not None:
            return False
        sock.settimeout(None)  # a slow reader holds the window, not a timer
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        tune(sock)
        self._sock = sock
        return True

    def queue(self, seq: int, batch: pa.RecordBatch, length: int) -> None:
        """Write ``batch`` (``length`` IPC bytes) after everything queued before (pushes
        are queued in send order)."""
        self._send.send_nowait((seq, batch, length))

    async def _write_queued(self) -> None:
        with contextlib.suppress(trio.ClosedResourceError):  # closed: the rest is dropped
            async for seq, batch, length in self._receive:
                sock = self._sock
                assert sock is not None
                broke = await trio.to_thread.run_sync(
                    _send_batch,
                    sock,
                    seq,
                    batch,
                    length,
                    limiter=self._thread,
                    abandon_on_cancel=True,
                )
                del batch  # the frame's memory, not kept while waiting for the next one
                if broke is not None:
                    # The client then fails its push with bulk-unavailable: inline from there.
                    log.info("bulk connection broke: %s", broke)
                    self.close()
                    return

    def close(self) -> None:
        """Stop writing: queued batches are released now, a write in progress fails."""
        self._closed = True
        self._listener.withdraw(self.token)
        self._send.close()
        self._receive.close()  # the last receiver: trio drops the queued batches
        if self._sock is not None:
            shut_down(self._sock)


def _send_batch(sock: socket.socket, seq: int, batch: pa.RecordBatch, length: int) -> str | None:
    """In a worker thread: header, then ``batch`` serialised straight into the socket;
    returns why the connection broke, or None.

    Arrow hands the IPC writer's body buffers (the pixels) to the sink as they are, so the
    kernel's copy into the socket is the only pass over them in the daemon. A failure is
    returned as text: the exception's traceback would hold this frame and the batch.
    """
    sink = _SocketSink(sock, HEADER.pack(seq, length))
    try:
        with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), batch.schema) as writer:
            writer.write_batch(batch)
        sink.flush()
    except OSError as exc:  # ssl.SSLError too
        return str(exc) or type(exc).__name__
    return None


class _SocketSink:
    """A file for :class:`pyarrow.PythonFile`: gathers the IPC stream's small pieces
    (lengths, flatbuffers, padding) and sends big ones straight from Arrow's memory."""

    GATHER = 64 * 1024

    def __init__(self, sock: socket.socket, first: bytes) -> None:
        self._sock = sock
        self._pending = bytearray(first)
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if view.nbytes < self.GATHER:
            self._pending += view
        else:
            self.flush()
            self._sock.sendall(view)
        return view.nbytes

    def flush(self) -> None:
        if self._pending:
            self._sock.sendall(self._pending)
            self._pending.clear()

    def close(self) -> None:
        self.closed = True


def _shut_down_fd(fd: int) -> None:
    """Shut down the socket behind ``fd`` without closing ``fd`` (its owner closes it)."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.detach()
