"""The daemon's listening sockets and the one accept loop they all share (the buffers they
ask for: :mod:`labd.contract.sockets`).

labd accepts every connection itself (unix socket, TCP, bulk ports) — pycapnp's own
servers accept where labd can neither set socket options nor count, refuse or guard
connections — and hands each one to pycapnp already connected (:mod:`labd.rpc.guard`).
The accept loop survives everything ``accept`` can raise: out of descriptors it logs,
backs off and goes on (docs/security.md, "Limits").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from labd.contract.sockets import tune
from labd.rpc.admission import Door, Gate, is_out_of_descriptors
from labd.rpc.limits import ACCEPT_BACKOFF_S, ThrottledLog

BACKLOG = 4096
"""Connections the kernel queues before the daemon accepts them (capped by
``net.core.somaxconn``): a burst of clients waits there instead of being refused."""


def bind_private(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, born mode 0600 (no window of wider access)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        listener.bind(str(path))
        listener.listen(BACKLOG)
    except BaseException:
        listener.close()
        raise
    finally:
        os.umask(umask)
    listener.setblocking(False)
    return listener


async def bind_tcp(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets on every address ``host`` resolves to, all on one port (the
    first one's when ``port`` is 0)."""
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if len(listeners) > 1:
                address = (address[0], listeners[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    return listeners


async def serve(
    listener: socket.socket,
    door: Door,
    handle: Callable[[socket.socket, Gate], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    """Accept connections on ``listener`` until cancelled; run ``handle(sock, gate)`` for
    each one ``door`` admits, in ``nursery``. Never raises OSError."""
    out_of_descriptors = ThrottledLog()
    while True:
        await door.wait_for_room()
        while True:
            await trio.lowlevel.wait_readable(listener)
            try:
                conn, address = listener.accept()
                break
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                if is_out_of_descriptors(exc):
                    out_of_descriptors(
                        "cannot accept on %s: %s; waiting for connections to close",
                        door.name,
                        exc.strerror,
                    )
                    await trio.sleep(ACCEPT_BACKOFF_S)
                # else: the peer gave up before we took it (ECONNABORTED, EPROTO, EPERM)
        gate = door.admit(conn, address)
        if gate is None:
            nursery.start_soon(door.refuse, conn, door.full)
        else:
            nursery.start_soon(_serve_one, conn, gate, handle)


async def _serve_one(
    conn: socket.socket, gate: Gate, handle: Callable[[socket.socket, Gate], Awaitable[None]]
) -> None:
    """Run ``handle``, which owns ``conn`` from here on (it closes it or hands it on)."""
    try:
        try:
            conn.setblocking(False)
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            tune(conn)
        except OSError:  # the peer left before we could take it
            conn.close()
            return
        await handle(conn, gate)
    finally:
        gate.close()
