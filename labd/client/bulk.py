"""The client's end of a subscription's bulk connection (:mod:`labd.rpc.bulk`).

The daemon offers the connection in a push; :meth:`BulkReader.connect` opens it in the
background while that push's batch is delivered from the message. Later pushes name a
length instead of carrying bytes, and :meth:`BulkReader.read` takes that batch off the
connection before the push is acknowledged (so the window still bounds what is in flight).
"""

from __future__ import annotations

import ssl

import trio

from labd.rpc.bulk import CONNECT_TIMEOUT_S, HEADER


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
        self._conn: trio.SocketStream | None = None
        self._stream: trio.abc.Stream | None = None
        self._failure: str | None = None
        self._ready = trio.Event()
        self._lock = trio.Lock()
        self._early: dict[int, bytearray] = {}
        self.batches = 0
        """Batches that came on the bulk connection."""

    async def connect(self, port: int, token: bytes) -> None:
        """Open the connection and present ``token``; a failure is kept for :meth:`read`."""
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                conn = self._conn = await trio.open_tcp_stream(self._host, port)
                conn.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
                stream: trio.abc.Stream = conn
                if self._ssl_context is not None:
                    stream = trio.SSLStream(
                        conn, self._ssl_context, server_hostname=self._server_hostname
                    )
                await stream.send_all(token)
                self._stream = stream
        except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
            self._failure = f"cannot connect to {self._host}:{port}: {exc or type(exc).__name__}"
            self.close()
        finally:
            self._ready.set()

    async def read(self, seq: int, length: int) -> bytearray:
        """The batch of push ``seq`` (``length`` bytes); raises :class:`BulkUnavailable`.

        Pushes may be handled out of order; the connection is read in order, so a batch
        read ahead of its push waits in ``_early``.
        """
        with trio.move_on_after(10 * CONNECT_TIMEOUT_S):
            await self._ready.wait()
        async with self._lock:
            while seq not in self._early:
                if self._stream is None:
                    raise BulkUnavailable(self._failure or "the bulk connection is not open")
                got_seq, got_length = HEADER.unpack(await self._receive(HEADER.size))
                if got_seq > seq or (got_seq == seq and got_length != length):
                    raise BulkUnavailable(
                        f"out of step: expected batch {seq} ({length} bytes),"
                        f" got {got_seq} ({got_length} bytes)"
                    )
                self._early[got_seq] = await self._receive(got_length)
            self.batches += 1
            return self._early.pop(seq)

    async def _receive(self, size: int) -> bytearray:
        assert self._stream is not None and self._conn is not None
        data = bytearray(size)
        view = memoryview(data)
        done = 0
        try:
            if isinstance(self._stream, trio.SocketStream):
                # Straight into the buffer: no intermediate bytes for 8 MiB frames.
                while done < size:
                    n = await self._conn.socket.recv_into(view[done:])
                    if not n:
                        raise BulkUnavailable("the daemon closed the bulk connection")
                    done += n
            else:
                while done < size:
                    chunk = await self._stream.receive_some(size - done)
                    if not chunk:
                        raise BulkUnavailable("the daemon closed the bulk connection")
                    view[done : done + len(chunk)] = chunk
                    done += len(chunk)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.close()
            raise BulkUnavailable(f"reading the bulk connection failed: {exc}") from None
        return data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.socket.close()
        self._stream = None
