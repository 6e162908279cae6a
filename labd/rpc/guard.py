"""Message size caps on a connection, enforced on the bytes as they arrive.

A Cap'n Proto stream message starts with its segment table (segment count, then each
segment's size in words), and pycapnp allocates and reads whatever the table announces:
a peer could announce 2^32 words before saying a word of its token. The reader's
traversal limit does not help (it is checked when the message is walked, long after it
was buffered), so :class:`FramingGuard` sits between the transport and pycapnp's own
protocol. pycapnp reads through an asyncio ``BufferedProtocol``: the transport receives
straight into the buffer that pycapnp's ``get_buffer`` hands out. The guard passes that
buffer on unchanged (no copy), reads only the segment tables in the bytes just received,
and closes the connection when one announces more than the connection may send — before
pycapnp has seen the announcement. Inside a message body it only subtracts, so a frame
costs the guard nothing per byte.

Before unlock or redeem the caps are small (:attr:`~labd.rpc.limits.Limits.pre_auth_message_bytes`
per message, :attr:`~labd.rpc.limits.Limits.pre_auth_bytes` in all); :meth:`FramingGuard.lift`
raises them to :attr:`~labd.rpc.limits.Limits.message_bytes` per message.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import capnp

from labd.contract.errors import CLOSED_MARKER
from labd.rpc.limits import KIB, MIB, Limits

_FIRST_WORD = struct.Struct("<II")
"""Segment count minus one, then the size of the first segment in words."""
LINGER_S = 1.0
"""How long a closing connection may take to send its last words before it is cut."""
_UNLIMITED = 1 << 62


class FramingGuard(asyncio.BufferedProtocol):
    """pycapnp's protocol for one connection, behind a check of every message's size.

    ``on_refuse(reason)`` is called once when the guard closes the connection.
    """

    __slots__ = (
        "_budget",
        "_get_buffer",
        "_head",
        "_head_needed",
        "_inner",
        "_lifted",
        "_limits",
        "_message_limit",
        "_on_refuse",
        "_skip",
        "_transport",
        "_updated",
        "_view",
        "_writing_paused",
        "refused",
    )

    def __init__(self, inner: Any, limits: Limits, on_refuse: Callable[[str], None]) -> None:
        self._inner = inner
        self._get_buffer = inner.get_buffer
        self._updated = inner.buffer_updated
        self._limits = limits
        self._on_refuse = on_refuse
        self._transport: Any = None
        self._view: Any = None
        self._skip = 0
        """Bytes of the current message still to come (table and body)."""
        self._head = bytearray()
        """The start of a segment table split across reads."""
        self._head_needed = 0
        self._message_limit = limits.pre_auth_message_bytes
        self._budget = limits.pre_auth_bytes
        self._writing_paused = False
        self._lifted = False
        self.refused: str | None = None

    # ------------------------------------------------------------ the checks

    def lift(self) -> None:
        """The connection has authenticated: the per-message cap of an authenticated one."""
        self._message_limit = self._limits.message_bytes
        self._budget = _UNLIMITED
        self._lifted = True

    def get_buffer(self, sizehint: int) -> Any:
        view = self._view = self._get_buffer(sizehint)
        return view

    def buffer_updated(self, nbytes: int) -> None:
        skip = self._skip - nbytes
        budget = self._budget = self._budget - nbytes
        if skip >= 0 and budget >= 0:  # inside a message: the case of every big read
            self._skip = skip
            self._updated(nbytes)
            return
        if skip == -nbytes and budget >= 0 and nbytes >= 8 and not self._head:
            # A read that starts a message: for calls, usually one segment, all of it.
            count, first = _FIRST_WORD.unpack_from(self._view)
            size = 8 + 8 * first
            if count == 0 and nbytes <= size <= self._message_limit:
                self._skip = size - nbytes
                self._updated(nbytes)
                return
        if self._scan(nbytes):
            self._updated(nbytes)

    def _scan(self, end: int) -> bool:
        """Walk the segment tables in the first ``end`` bytes of the buffer; False if the
        connection was refused."""
        if self._budget < 0:
            limit = self._limits.pre_auth_bytes
            return self.refuse(f"sent more than {_size(limit)} before unlocking")
        view, pos = self._view, 0
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
            elif self._head or end - pos < 8:
                pos = self._continue_head(view, pos, end)
                if pos < 0:
                    return False
            else:
                count, first = _FIRST_WORD.unpack_from(view, pos)
                table = _table_bytes(count)
                if table > self._message_limit:
                    return self._oversize(table)
                if end - pos < table:
                    pos = self._continue_head(view, pos, end)
                    if pos < 0:
                        return False
                    continue
                if count == 0:
                    size = 8 + 8 * first
                else:
                    size = table + 8 * sum(struct.unpack_from(f"<{count + 1}I", view, pos + 4))
                if size > self._message_limit:
                    return self._oversize(size)
                self._skip = size  # consumed by the first branch
        return True

    def _continue_head(self, view: Any, pos: int, end: int) -> int:
        """Collect a segment table split across reads; the new position, -1 if refused."""
        head = self._head
        needed = self._head_needed or 8
        take = min(needed - len(head), end - pos)
        head += view[pos : pos + take]
        pos += take
        if len(head) < needed:
            self._head_needed = needed
            return pos
        count = _FIRST_WORD.unpack_from(head)[0]
        table = _table_bytes(count)
        if table > self._message_limit:
            self._oversize(table)
            return -1
        if len(head) < table:
            self._head_needed = table
            return self._continue_head(view, pos, end) if pos < end else pos
        size = table + 8 * sum(struct.unpack_from(f"<{count + 1}I", head, 4))
        if size > self._message_limit:
            self._oversize(size)
            return -1
        self._skip = size - len(head)
        head.clear()
        self._head_needed = 0
        return pos

    def _oversize(self, size: int) -> bool:
        limit = self._message_limit
        if self._lifted:
            return self.refuse(f"sent a message of {_size(size)}; the limit is {_size(limit)}")
        return self.refuse(
            f"sent a message of {_size(size)} before unlocking; the limit is {_size(limit)}"
            " until unlock or redeem"
        )

    def refuse(self, reason: str, tell: bool = True) -> bool:
        """Close the connection for ``reason`` (told to the peer in an Abort message when
        nothing else is being written); returns False for the callers above."""
        if self.refused is not None:
            return False
        self.refused = reason
        # From now on what still arrives is swallowed: pycapnp sees none of it.
        self._get_buffer = _swallow_into
        self._updated = _ignore
        self._skip = self._budget = _UNLIMITED
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if tell and not self._writing_paused:  # every message so far was written whole
                transport.write(abort_message(reason))
                transport.close()
                asyncio.get_running_loop().call_later(LINGER_S, transport.abort)
            else:
                transport.abort()
        self._on_refuse(reason)
        return False

    # ------------------------------------------------------------ the rest: pycapnp's

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._inner.resume_writing()


def _swallow_into(sizehint: int) -> bytearray:
    return bytearray(64 * KIB)


def _ignore(nbytes: int) -> None:
    pass


def _table_bytes(count: int) -> int:
    """Bytes of a segment table whose first field is ``count`` (segments minus one)."""
    return 8 * ((count + 3) // 2)


def _size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    if n >= KIB:
        return f"{n / KIB:.0f} KiB"
    return f"{n} bytes"


async def open_stream(
    sock: socket.socket,
    limits: Limits,
    on_refuse: Callable[[str], None],
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[Any, FramingGuard]:
    """Hand the accepted ``sock`` to pycapnp behind a :class:`FramingGuard`: the
    ``AsyncIoStream`` to serve and its guard. With ``ssl_context``, the TLS handshake
    happens here (the caller bounds its time)."""
    streams: list[Any] = []
    inner = capnp.AsyncIoStream._connect(streams.append)
    guard = FramingGuard(inner, limits, on_refuse)
    loop = asyncio.get_running_loop()
    await loop.connect_accepted_socket(
        lambda: guard,
        sock,
        ssl=ssl_context,
        ssl_handshake_timeout=limits.auth_timeout_s if ssl_context else None,
    )
    return streams[0], guard


@functools.cache
def _rpc_schema() -> Any:
    include = os.path.dirname(os.path.dirname(capnp.__file__))
    return capnp.load(os.path.join(os.path.dirname(capnp.__file__), "rpc.capnp"), imports=[include])


@functools.lru_cache(maxsize=64)
def abort_message(reason: str) -> bytes:
    """The Cap'n Proto RPC ``Abort`` message carrying ``reason``: a client library shows
    it as the reason the connection ended (``remote exception: <reason>``)."""
    message = _rpc_schema().Message.new_message()
    exception = message.init("abort")
    exception.reason = CLOSED_MARKER + reason
    exception.type = "disconnected"
    data: bytes = message.to_bytes()
    return data
