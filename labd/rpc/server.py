"""``serve_rpc``: the daemon's Cap'n Proto listeners (unix socket, TCP, TLS).

Each connection gets its own Trio nursery (a :class:`~labd.rpc.lab.Session`): the calls it
makes and the subscriptions it opens run there, so a client that disconnects — cleanly,
killed, or by sending garbage — takes exactly its own work down with it.

Must run under :func:`labd.aio.run` (pycapnp needs the asyncio loop Trio is a guest of).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import capnp
import trio

from labd.aio import aio, to_trio
from labd.rpc import lanes, sockets
from labd.rpc.address import (
    TlsConfig,
    default_socket_path,
    ensure_private_dir,
    parse_address,
    token_path_for,
    write_token,
)
from labd.rpc.bulk import BulkListener
from labd.rpc.lab import BootstrapServer, Services, Session
from labd.rpc.replay import RecordedData
from labd.streams import StreamHub
from labd.supervisor import Supervisor

log = logging.getLogger("labd.rpc")

TRAVERSAL_LIMIT_WORDS = 2**30 // 8 * 2
"""2 GiB per message: big frames must pass (pycapnp's default stops at 64 MiB)."""


class DaemonLike(Protocol):
    supervisor: Supervisor
    streams: StreamHub


@dataclass
class Endpoints:
    """Where a running server listens (what ``task_status.started`` reports)."""

    socket_path: Path
    token_path: Path
    tcp: list[tuple[str, int, bool]] = field(default_factory=list)
    """(host, port, tls) of every TCP listener, with the real port when 0 was asked for."""


async def serve_rpc(
    daemon: DaemonLike,
    *,
    socket_path: str | os.PathLike[str] | None = None,
    listen: Sequence[str] = (),
    tls: TlsConfig | None = None,
    task_status: trio.TaskStatus[Endpoints] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``daemon`` over RPC until cancelled.

    Always on a unix socket (``socket_path``, default :func:`default_socket_path`, mode
    0600, token file next to it); also on each ``HOST:PORT`` in ``listen``, with TLS when
    ``tls`` is given. Removes the socket and token file on the way out.
    """
    path = Path(socket_path) if socket_path is not None else default_socket_path()
    ensure_private_dir(path.parent)
    await _claim_socket_path(path)
    for stale in lanes.remove_stale_lanes():
        log.info("removed %s, left by a daemon that was killed", stale)
    token_path = token_path_for(path)
    services = Services(
        supervisor=daemon.supervisor,
        streams=daemon.streams,
        lab_token=write_token(token_path),
        token_hint=str(token_path),
        scripts=getattr(daemon, "scripts", None),
        data=daemon if isinstance(daemon, RecordedData) else None,
    )
    servers: list[Any] = []
    try:
        async with trio.open_nursery() as nursery:

            async def on_connect(bulk: BulkListener, stream: Any) -> None:
                await to_trio(nursery, partial(serve_connection, services, bulk=bulk), stream)

            listener = sockets.bind_private(path)
            servers.append(listener)
            nursery.start_soon(
                sockets.serve, listener, partial(serve_connection, services, local=True), nursery
            )
            endpoints = Endpoints(path, token_path)
            ssl_context = tls.server_context() if tls is not None else None
            for text in listen:
                address = parse_address(text)
                if address.kind == "unix":
                    raise ValueError(f"--listen takes HOST:PORT, not a socket path ({text!r})")
                bulk = await BulkListener.open(address.host, ssl_context)
                nursery.start_soon(bulk.serve)
                tcp_server = await aio(
                    capnp.AsyncIoStream.create_server(
                        partial(on_connect, bulk), address.host, address.port, ssl=ssl_context
                    )
                )
                servers.append(tcp_server)
                for sock in tcp_server.sockets:
                    host, port = sock.getsockname()[:2]
                    endpoints.tcp.append((host, port, ssl_context is not None))
                    log.info("listening on %s:%d%s", host, port, " (TLS)" if ssl_context else "")
                log.info("bulk channel of %s on %s:%d", text, bulk.host, bulk.port)
                if ssl_context is None and not _is_loopback(address.host):
                    log.warning(
                        "TCP on %s without TLS: the lab token and all data travel in clear text;"
                        " configure a certificate (--tls-cert/--tls-key)",
                        address.host,
                    )
            log.info("RPC on %s (token in %s)", path, token_path)
            task_status.started(endpoints)
            await trio.sleep_forever()
    finally:
        for server in servers:
            server.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            token_path.unlink()


async def serve_connection(
    services: Services, stream: Any, *, local: bool = False, bulk: BulkListener | None = None
) -> None:
    """Run one client connection until it ends; then cancel everything it started.

    ``local``: it came in on the unix socket (see :attr:`Session.local`); ``bulk``: the
    bulk endpoint of the TCP listener it came in on.
    """
    async with trio.open_nursery() as nursery:
        session = Session(services, nursery, local, bulk)
        server = capnp.TwoPartyServer(
            stream,
            bootstrap=BootstrapServer(session),
            traversal_limit_in_words=TRAVERSAL_LIMIT_WORDS,
        )
        try:
            await aio(server.on_disconnect())
            log.debug("client disconnected")
        except Exception as exc:  # garbage on the wire, a reset: this connection only
            log.info("closing a client connection: %s", _first_line(exc))
        finally:
            nursery.cancel_scope.cancel()
            stream.close()


async def _claim_socket_path(path: Path) -> None:
    """Remove a stale socket; refuse to steal the socket of a daemon that still answers."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise RuntimeError(
        f"another labd daemon is already listening at {path}; stop it, or start this one"
        " with another --socket path"
    )


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
