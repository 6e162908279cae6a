"""Client-side errors, and the translation of remote failures into labd's exception classes."""

from __future__ import annotations

import capnp

from labd.contract.errors import CLOSED_MARKER, error_from_code, parse_error


class NoDaemon(ConnectionError):
    """Nothing answers at the address (no daemon started, or a wrong address)."""


class ConnectionLost(ConnectionError):
    """The daemon went away while this client was connected. Connect again to go on."""


class ConnectionClosed(ConnectionLost):
    """The daemon closed this connection and said why: one of its limits (too many
    connections, too slow to unlock, too many wrong tokens, a message too big) or the
    wrong protocol for the port (plain TCP to a TLS port)."""


def translate(exc: BaseException, address: str) -> BaseException:
    """The exception a client should see for ``exc`` raised by a pycapnp call."""
    if not isinstance(exc, capnp.KjException):
        return exc
    text = exc.description if exc.wrapper is not None else str(exc)
    parsed = parse_error(text)
    if parsed is not None:
        return error_from_code(*parsed)
    if exc.type == "DISCONNECTED":
        return connection_lost(address, text)
    return RuntimeError(f"labd RPC failed: {text.strip().splitlines()[0] if text else exc}")


def connection_lost(address: str, detail: str = "") -> ConnectionLost:
    detail = detail.strip().splitlines()[0] if detail.strip() else "connection closed"
    _, marker, reason = detail.partition(CLOSED_MARKER)
    if marker:
        return ConnectionClosed(f"the labd daemon at {address} closed the connection: {reason}")
    return ConnectionLost(
        f"the labd daemon at {address} went away ({detail}); this connection and every"
        f" capability from it are dead. Reconnect with labd.client.connect({address!r})"
        " once the daemon runs again (`labd status` tells whether it does)."
    )


def no_daemon(address: str, why: str) -> NoDaemon:
    return NoDaemon(f"no labd daemon at {address} ({why}); start one with `labd serve`")
