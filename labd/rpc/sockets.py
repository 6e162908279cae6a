"""Unix sockets with buffers sized for camera frames, on both ends of a labd connection.

A unix stream socket holds at most its sender's ``SO_SNDBUF`` (default 208 KiB) in
flight. An 8 MiB frame then crosses in ~40 slices, each a wake-up of both processes and a
turn of both event loops; measured, that ping-pong (not copying) capped pushed frames at
~90/s. With 4 MiB asked for (Linux doubles it, capped by ``net.core.wmem_max``) a frame
crosses in one or two slices.

pycapnp's own ``create_unix_server`` accepts connections where labd cannot set socket
options, so labd accepts them itself and hands each socket to pycapnp already connected
(``AsyncIoStream.create_unix_connection(sock=...)``, its public API).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import capnp
import trio

from labd.aio import aio

SOCKET_BUFFER_BYTES = 4 * 2**20


def tune(sock: socket.socket) -> None:
    """Ask for big send and receive buffers (the kernel caps them at ``wmem_max``/``rmem_max``)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)


def bind_private(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, born mode 0600 (no window of wider access)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    except BaseException:
        listener.close()
        raise
    finally:
        os.umask(umask)
    listener.listen(128)
    listener.setblocking(False)
    return listener


async def serve(
    listener: socket.socket,
    handle: Callable[[Any], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    """Accept connections on ``listener`` forever; run ``handle(stream)`` for each in ``nursery``.

    ``stream`` is the pycapnp ``AsyncIoStream`` of the (tuned) accepted socket.
    """
    while True:
        await trio.lowlevel.wait_readable(listener)
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue
        tune(conn)
        nursery.start_soon(_serve_one, conn, handle)


async def _serve_one(conn: socket.socket, handle: Callable[[Any], Awaitable[None]]) -> None:
    try:
        stream = await aio(capnp.AsyncIoStream.create_unix_connection(sock=conn))
    except OSError:  # the peer left before asyncio took the socket
        conn.close()
        return
    await handle(stream)


async def connect(path: Path) -> Any:
    """A pycapnp ``AsyncIoStream`` connected to the unix socket at ``path`` (raises OSError)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        tune(sock)
        sock.setblocking(False)
        await aio(asyncio.get_running_loop().sock_connect(sock, str(path)))
        return await aio(capnp.AsyncIoStream.create_unix_connection(sock=sock))
    except BaseException:
        sock.close()
        raise
