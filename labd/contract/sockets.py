"""The client's connect to a daemon's unix socket, and the socket buffers both ends ask for.

A unix stream socket holds at most its sender's ``SO_SNDBUF`` (default 208 KiB) in
flight. An 8 MiB frame then crosses in ~40 slices, each a wake-up of both processes and a
turn of both event loops; measured, that ping-pong (not copying) capped pushed frames at
~90/s. With 4 MiB asked for (Linux doubles it, capped by ``net.core.wmem_max``) a frame
crosses in one or two slices.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import capnp
import trio

from labd.aio import aio

SOCKET_BUFFER_BYTES = 4 * 2**20
CONNECT_TIMEOUT_S = 10.0
"""How long a client keeps retrying a unix socket whose backlog is full."""


def tune(sock: socket.socket) -> None:
    """Ask for big send and receive buffers (the kernel caps them at ``wmem_max``/``rmem_max``)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)


async def connect(path: Path, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A pycapnp ``AsyncIoStream`` connected to the unix socket at ``path`` (raises OSError).

    A daemon whose backlog is full answers ``EAGAIN`` (it is busy, not gone): retried
    with a short back-off for up to ``timeout`` seconds.
    """
    deadline = trio.current_time() + timeout
    delay = 0.002
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            tune(sock)
            sock.setblocking(False)
            try:
                sock.connect(str(path))
            except BlockingIOError as exc:
                if trio.current_time() + delay > deadline:
                    raise OSError(
                        errno.EAGAIN, f"the daemon stayed too busy to accept for {timeout:g} s"
                    ) from exc
                sock.close()
                await trio.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            return await aio(capnp.AsyncIoStream.create_unix_connection(sock=sock))
        except BaseException:
            sock.close()
            raise
