"""The bulk side channel's framing, as the daemon writes it and the client reads it.

How the channel works and why: :mod:`labd.rpc.bulk`. The client reads it in a worker
thread with blocking calls (:mod:`labd.client.bulk`).
"""

from __future__ import annotations

import contextlib
import socket
import struct

TOKEN_BYTES = 32
CONNECT_TIMEOUT_S = 1.0
"""A client gets this long to connect and present its token; then the offer lapses."""
HEADER = struct.Struct("<QQ")
"""Before each batch on the bulk socket: its ``seq`` and byte length (the client checks
both against the push, so a desynchronised stream fails instead of mixing frames up)."""
BULK_UNAVAILABLE = "bulk-unavailable"
"""The error code a client answers a push with when it cannot read the bulk socket."""


def shut_down(sock: socket.socket) -> None:
    """Close ``sock``; a worker thread blocked on it wakes up with an error (a bare
    ``close`` would leave it blocked)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def receive_exactly(sock: socket.socket, size: int) -> bytearray:
    """In a worker thread: ``size`` bytes from ``sock`` into one new buffer."""
    data = bytearray(size)
    receive_into(sock, memoryview(data))
    return data


def receive_into(sock: socket.socket, view: memoryview) -> None:
    """In a worker thread: fill ``view`` from ``sock``."""
    done = 0
    while done < view.nbytes:
        n = sock.recv_into(view[done:])
        if not n:
            raise ConnectionResetError("the peer closed the connection")
        done += n
