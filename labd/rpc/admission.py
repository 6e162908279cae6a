"""Who gets in, and for how long without a token.

Each listener has a :class:`Door`: it counts the listener's open connections (one past
:attr:`~labd.rpc.limits.Limits.max_connections` is refused at once) and holds a slot for
each connection that has not authenticated yet; with every slot taken the listener stops
accepting, so a flood of silent connections waits in the kernel's backlog instead of
costing the daemon descriptors and memory. Each connection has a :class:`Gate`: its
deadline to unlock or redeem, its wrong tokens, and the :class:`~labd.rpc.guard.FramingGuard`
whose caps it lifts when it authenticates. :class:`WrongTokens` slows guessing per peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import trio

from labd.rpc.guard import LINGER_S, FramingGuard, abort_message
from labd.rpc.limits import (
    MAX_WRONG_TOKEN_DELAY_S,
    PEER_MEMORY_S,
    WRONG_TOKEN_DELAY_S,
    Limits,
    ThrottledLog,
)

log = logging.getLogger("labd.rpc")

MAX_REMEMBERED_PEERS = 4096
MAX_LINGERING = 32
"""Refused connections per listener that may linger to let their peer read the reason."""
_PEERCRED = struct.Struct("3i")


class Door:
    """One listener's admission: ``name`` says which in the log (``unix socket``,
    ``127.0.0.1:7000``, ``bulk port 127.0.0.1:40123``)."""

    def __init__(self, name: str, limits: Limits, wrong_tokens: WrongTokens | None = None) -> None:
        self.name = name
        self.limits = limits
        self.wrong_tokens = wrong_tokens
        self.speaks_rpc = wrong_tokens is not None
        """Refusals are told as a Cap'n Proto Abort (not on a bulk port: it speaks no RPC
        and takes no lab or sharing tokens)."""
        self.open = 0
        self._waiting = trio.Semaphore(limits.max_unauthenticated)
        self._log_refusal = ThrottledLog()
        self._log_closed = ThrottledLog(logging.INFO)
        self._lingering = 0

    async def wait_for_room(self) -> None:
        """Until fewer than ``max_unauthenticated`` connections wait to authenticate."""
        await self._waiting.acquire()

    def admit(self, conn: socket.socket, address: object) -> Gate | None:
        """The gate of the accepted ``conn``, or None when the listener is full (then
        refuse it with :meth:`refuse` and :attr:`full`). Call after :meth:`wait_for_room`."""
        if self.open >= self.limits.max_connections:
            self._waiting.release()
            return None
        self.open += 1
        return Gate(self, peer_of(conn, address))

    @property
    def full(self) -> str:
        """Why a connection is refused when the listener is full."""
        return f"{self.open} connections open, the daemon's limit; try again later"

    async def refuse(self, conn: socket.socket, reason: str) -> None:
        """Refuse an accepted connection before pycapnp has it, telling ``reason`` in an
        Abort message on an RPC listener; then close ``conn``.

        The socket lingers a moment, read and discarded: a client writes its first
        requests without waiting, and one that finds the socket closed fails with
        "broken pipe" before it reads the reason. Only :data:`MAX_LINGERING` at a time,
        so a flood of refusals costs no more descriptors than that.
        """
        self._log_refusal("refused a connection on %s: %s", self.name, reason)
        try:
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                if self.speaks_rpc:
                    conn.send(abort_message(reason))
                if self.speaks_rpc and self._lingering < MAX_LINGERING:
                    self._lingering += 1
                    try:
                        conn.shutdown(socket.SHUT_WR)
                        with trio.move_on_after(LINGER_S):
                            await _discard_until_closed(conn)
                    finally:
                        self._lingering -= 1
        finally:
            conn.close()

    def note_refusal(self, peer: Peer, reason: str) -> None:
        """Log that a connection of ``peer`` was closed for ``reason`` (rate-limited)."""
        self._log_closed("closed a connection from %s on %s: %s", peer.text, self.name, reason)


class Gate:
    """One connection's standing before and after it authenticates."""

    def __init__(self, door: Door, peer: Peer) -> None:
        self.door = door
        self.peer = peer
        self.deadline = trio.current_time() + door.limits.auth_timeout_s
        self.authenticated = trio.Event()
        self.guard: FramingGuard | None = None
        self.wrong = 0
        self._closed = False

    def authenticate(self) -> None:
        """Unlocked or redeemed: lift the pre-authentication caps and free the slot."""
        if self.authenticated.is_set() or self._closed:
            return
        self.authenticated.set()
        self.door._waiting.release()
        if self.guard is not None:
            self.guard.lift()

    async def wrong_token(self) -> None:
        """A wrong lab or sharing token: count it, close the connection once it has shown
        too many, and make the peer wait (the caller then raises PermissionDenied)."""
        self.wrong += 1
        limit = self.door.limits.wrong_tokens_per_connection
        if self.wrong > limit and self.guard is not None:
            self.guard.refuse(f"more than {limit} wrong tokens on one connection")
        elif self.door.wrong_tokens is not None:
            await self.door.wrong_tokens.penalise(self.peer, self.door.name)

    def refuse(self, reason: str) -> None:
        """Close the connection for ``reason`` (logged at info)."""
        if self.guard is not None:
            self.guard.refuse(reason)

    def close(self) -> None:
        """The connection ended: free its place (and its slot, had it not authenticated)."""
        if self._closed:
            return
        self._closed = True
        self.door.open -= 1
        if not self.authenticated.is_set():
            self.door._waiting.release()


@dataclass(frozen=True)
class Peer:
    """Who is at the other end: ``key`` groups its wrong tokens, ``text`` names it in logs."""

    key: str
    text: str


def peer_of(conn: socket.socket, address: object) -> Peer:
    """TCP: the peer's IP address. Unix socket: its uid (``SO_PEERCRED``; the socket is
    private to the daemon's user, so this groups that user's processes), pid for the log."""
    if conn.family == socket.AF_UNIX:
        try:
            pid, uid, _ = _PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
        except OSError:
            return Peer("unix", "a local process")
        return Peer(f"uid {uid}", f"pid {pid} (uid {uid})")
    host = address[0] if isinstance(address, tuple) else str(address)
    return Peer(str(host), str(host))


async def _discard_until_closed(conn: socket.socket) -> None:
    discarded = 0
    while discarded < 1 << 20:
        await trio.lowlevel.wait_readable(conn)
        data = conn.recv(64 * 1024)
        if not data:
            return
        discarded += len(data)


@dataclass
class _PeerRecord:
    wrong: int = 0
    last: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class WrongTokens:
    """Wrong tokens per peer, daemon-wide: the first ``free`` within
    :data:`~labd.rpc.limits.PEER_MEMORY_S` cost :data:`~labd.rpc.limits.WRONG_TOKEN_DELAY_S`
    each, every further one twice the one before (up to
    :data:`~labd.rpc.limits.MAX_WRONG_TOKEN_DELAY_S`). One peer's wrong tokens are
    answered one after another, so opening more connections does not guess faster.
    A right token is never delayed."""

    def __init__(self, free: int) -> None:
        self._free = free
        self._peers: OrderedDict[str, _PeerRecord] = OrderedDict()
        self._log = ThrottledLog()

    def delay_for(self, peer: Peer) -> float:
        """What the next wrong token of ``peer`` will cost."""
        record = self._peers.get(peer.key)
        wrong = record.wrong if record and time.monotonic() - record.last < PEER_MEMORY_S else 0
        excess = wrong + 1 - self._free
        if excess <= 0:
            return WRONG_TOKEN_DELAY_S
        return min(WRONG_TOKEN_DELAY_S * 2.0 ** min(excess, 32), MAX_WRONG_TOKEN_DELAY_S)

    async def penalise(self, peer: Peer, where: str) -> None:
        delay = self.delay_for(peer)
        record = self._peers.pop(peer.key, None)
        now = time.monotonic()
        if record is None or now - record.last >= PEER_MEMORY_S:
            record = _PeerRecord()
        record.wrong += 1
        record.last = now
        self._peers[peer.key] = record  # most recent last
        while len(self._peers) > MAX_REMEMBERED_PEERS:
            self._peers.popitem(last=False)
        if record.wrong > self._free:
            self._log(
                "wrong tokens from %s on %s: %d in the last minute; each now costs %.1f s",
                peer.text,
                where,
                record.wrong,
                delay,
            )
        async with record.lock:
            await asyncio.sleep(delay)


def is_out_of_descriptors(exc: OSError) -> bool:
    """``accept`` failed for want of file descriptors or kernel memory: worth a retry."""
    return exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
