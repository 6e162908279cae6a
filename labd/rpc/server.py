"""``serve_rpc``: the daemon's Cap'n Proto listeners (unix socket, TCP, TLS).

Each connection gets its own Trio nursery (a :class:`~labd.rpc.lab.Session`): the calls it
makes and the subscriptions it opens run there, so a client that disconnects — cleanly,
killed, or by sending garbage — takes exactly its own work down with it. Until it unlocks
or redeems, a connection lives under the limits of :mod:`labd.rpc.admission` and
:mod:`labd.rpc.guard` (docs/security.md, "Limits").

Must run under :func:`labd.aio.run` (pycapnp needs the asyncio loop Trio is a guest of).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import capnp
import trio

from labd.aio import aio
from labd.contract.address import (
    Address,
    TlsConfig,
    default_socket_path,
    ensure_private_dir,
    parse_address,
    token_path_for,
    write_token,
)
from labd.contract.limits import TRAVERSAL_LIMIT_WORDS
from labd.rpc import lanes, sockets
from labd.rpc.admission import Door, Gate, WrongTokens
from labd.rpc.bulk import BulkListener
from labd.rpc.guard import open_stream
from labd.rpc.lab import BootstrapServer
from labd.rpc.limits import DEFAULT_LIMITS, Limits, raise_fd_limit
from labd.rpc.replay import RecordedData
from labd.rpc.session import Services, Session
from labd.streams import StreamHub
from labd.supervisor import Supervisor

log = logging.getLogger("labd.rpc")

TLS_RECORD_HANDSHAKE = b"\x16"
"""The first byte a TLS client sends (a handshake record); a Cap'n Proto client never does."""
RESERVED_FDS = 128
"""Descriptors kept for everything but client connections (rings, files, bulk sockets)."""


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


class InsecureListen(ValueError):
    """``--listen`` on a non-loopback address without TLS, and ``insecure`` not given."""


async def serve_rpc(
    daemon: DaemonLike,
    *,
    socket_path: str | os.PathLike[str] | None = None,
    listen: Sequence[str] = (),
    tls: TlsConfig | None = None,
    limits: Limits = DEFAULT_LIMITS,
    insecure: bool = False,
    task_status: trio.TaskStatus[Endpoints] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``daemon`` over RPC until cancelled.

    Always on a unix socket (``socket_path``, default :func:`default_socket_path`, mode
    0600, token file next to it); also on each ``HOST:PORT`` in ``listen``, with TLS when
    ``tls`` is given — a non-loopback address without TLS only with ``insecure`` (the
    token would cross the network in clear text). ``limits``: connections, sizes and
    times (:class:`~labd.rpc.limits.Limits`). Removes the socket and token file on the
    way out.
    """
    addresses = [check_listen_address(t, tls=tls is not None, insecure=insecure) for t in listen]
    path = Path(socket_path) if socket_path is not None else default_socket_path()
    ensure_private_dir(path.parent)
    await _claim_socket_path(path)
    for stale in lanes.remove_stale_lanes():
        log.info("removed %s, left by a daemon that was killed", stale)
    _check_fd_budget(raise_fd_limit(), limits, 1 + 2 * len(addresses))
    token_path = token_path_for(path)
    services = Services(
        supervisor=daemon.supervisor,
        streams=daemon.streams,
        lab_token=write_token(token_path),
        token_hint=str(token_path),
        scripts=getattr(daemon, "scripts", None),
        data=daemon if isinstance(daemon, RecordedData) else None,
        parameters=getattr(daemon, "parameters", None),
    )
    wrong_tokens = WrongTokens(limits.wrong_tokens_per_peer)
    listeners: list[socket.socket] = []
    try:
        async with trio.open_nursery() as nursery:
            listener = sockets.bind_private(path)
            listeners.append(listener)
            door = Door("the unix socket", limits, wrong_tokens)
            handle = partial(_serve_accepted, services, local=True)
            nursery.start_soon(sockets.serve, listener, door, handle, nursery)
            endpoints = Endpoints(path, token_path)
            ssl_context = tls.server_context() if tls is not None else None
            for text, address in zip(listen, addresses, strict=True):
                bulk = await BulkListener.open(address.host, ssl_context, limits)
                nursery.start_soon(bulk.serve)
                for sock in await sockets.bind_tcp(address.host, address.port):
                    listeners.append(sock)
                    host, port = sock.getsockname()[:2]
                    door = Door(f"{host}:{port}", limits, wrong_tokens)
                    handle = partial(_serve_accepted, services, bulk=bulk, tls=ssl_context)
                    nursery.start_soon(sockets.serve, sock, door, handle, nursery)
                    endpoints.tcp.append((host, port, ssl_context is not None))
                    log.info("listening on %s:%d%s", host, port, " (TLS)" if ssl_context else "")
                log.info("bulk channel of %s on %s:%d", text, bulk.host, bulk.port)
                if ssl_context is None and not _is_loopback(address.host):
                    log.warning(
                        "TCP on %s without TLS (--insecure): the lab token and all data travel"
                        " in clear text",
                        address.host,
                    )
            log.info("RPC on %s (token in %s)", path, token_path)
            task_status.started(endpoints)
            await trio.sleep_forever()
    finally:
        for sock in listeners:
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            token_path.unlink()


def check_listen_address(text: str, *, tls: bool, insecure: bool) -> Address:
    """The TCP address ``--listen text`` names; raises ValueError for anything else, and
    :class:`InsecureListen` for a non-loopback one without TLS unless ``insecure``."""
    address = parse_address(text)
    if address.kind == "unix":
        raise ValueError(f"--listen takes HOST:PORT, not a socket path ({text!r})")
    if not tls and not insecure and not _is_loopback(address.host):
        raise InsecureListen(
            f"--listen {text}: not a loopback address, and without TLS the lab token would"
            " cross the network in clear text; give --tls-cert/--tls-key (or --insecure on"
            " a network you trust)"
        )
    return address


def _check_fd_budget(fd_limit: int, limits: Limits, listeners: int) -> None:
    wanted = listeners * limits.max_connections + RESERVED_FDS
    if wanted > fd_limit:
        log.warning(
            "the open-file limit (%d) is below what %d listeners with --max-connections %d"
            " may need (%d): past it, accepting waits for connections to close",
            fd_limit,
            listeners,
            limits.max_connections,
            wanted,
        )


async def _serve_accepted(
    services: Services,
    conn: socket.socket,
    gate: Gate,
    *,
    local: bool = False,
    bulk: BulkListener | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    """One accepted connection: check it speaks what the port speaks, hand it to pycapnp
    (TLS handshake included, all within the deadline to authenticate), serve it."""
    door = gate.door
    try:
        with trio.move_on_at(gate.deadline):
            # Unix: no wait (a client may wait for nothing). TCP: the first byte tells
            # TLS from plain Cap'n Proto. A peer already gone costs nothing more.
            first = _first_byte_now(conn) if local else await _first_byte(conn)
            if first == b"":
                return
            if not local and (problem := _wrong_protocol(conn, first, tls is not None)):
                await door.refuse(conn, problem)
                return
            stream, gate.guard = await aio(
                open_stream(conn, door.limits, partial(door.note_refusal, gate.peer), tls)
            )
        if gate.guard is None:
            waited = "TLS handshake" if tls else "request"
            door.note_refusal(gate.peer, f"no {waited} within {door.limits.auth_timeout_s:g} s")
            return
    except OSError as exc:  # ssl.SSLError too: a TLS handshake that failed
        door.note_refusal(gate.peer, exc.strerror or str(exc) or type(exc).__name__)
        return
    finally:
        if gate.guard is None:
            conn.close()
    await serve_connection(services, stream, gate, local=local, bulk=bulk)


def _first_byte_now(conn: socket.socket) -> bytes | None:
    """The first byte the peer sent (left unread), b"" if it has closed, None if nothing
    has come yet."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None


async def _first_byte(conn: socket.socket) -> bytes:
    await trio.lowlevel.wait_readable(conn)
    return conn.recv(1, socket.MSG_PEEK)


def _wrong_protocol(conn: socket.socket, first: bytes | None, tls: bool) -> str | None:
    """Why a client whose first byte is ``first`` does not fit the port (TLS or not)."""
    if (first == TLS_RECORD_HANDSHAKE) == tls:
        return None
    host, port = conn.getsockname()[:2]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls:
        return (
            f"this port speaks TLS: connect with tls://{where} (and --tls-ca CERT for a"
            " self-signed certificate)"
        )
    return f"this port speaks plain TCP, not TLS: connect with tcp://{where}"


async def serve_connection(
    services: Services,
    stream: Any,
    gate: Gate,
    *,
    local: bool = False,
    bulk: BulkListener | None = None,
) -> None:
    """Run one client connection until it ends; then cancel everything it started.

    ``gate``: its standing (:mod:`labd.rpc.admission`); ``local``: it came in on the unix
    socket (see :attr:`Session.local`); ``bulk``: the bulk endpoint of the TCP listener
    it came in on.
    """
    async with trio.open_nursery() as nursery:
        session = Session(services, nursery, local, bulk)
        server = capnp.TwoPartyServer(
            stream,
            bootstrap=BootstrapServer(session, gate),
            traversal_limit_in_words=TRAVERSAL_LIMIT_WORDS,
        )
        nursery.start_soon(_close_unless_authenticated, gate)
        try:
            await aio(server.on_disconnect())
            log.debug("client disconnected")
        except Exception as exc:  # garbage on the wire, a reset: this connection only
            if gate.guard is None or gate.guard.refused is None:
                log.info("closing a client connection: %s", _first_line(exc))
        finally:
            nursery.cancel_scope.cancel()
            stream.close()


async def _close_unless_authenticated(gate: Gate) -> None:
    with trio.move_on_at(gate.deadline):
        await gate.authenticated.wait()
        return
    gate.refuse(f"no unlock or redeem within {gate.door.limits.auth_timeout_s:g} s")


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
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
