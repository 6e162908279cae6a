"""One client connection to a daemon: opening it, calling through it, noticing its loss."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import capnp
import trio

from labd.aio import aio
from labd.client.errors import ConnectionLost, NoDaemon, connection_lost, no_daemon, translate
from labd.contract import schema, sockets
from labd.contract.address import Address, client_tls_context, parse_address
from labd.contract.limits import TRAVERSAL_LIMIT_WORDS

_s: Any = schema.load()

NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
"""OpenSSL's reasons for a first answer that is not a TLS record: the port speaks
something else (a plain labd port answers a TLS hello with a Cap'n Proto Abort)."""


class ClientSession:
    """A live connection: the bootstrap capability, a nursery for client-side servers
    (subscription sinks), and what to tell callers once the daemon is gone."""

    def __init__(
        self,
        address: Address,
        nursery: trio.Nursery,
        bootstrap: Any,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.address = address
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        """How the connection was secured: a bulk connection (:mod:`labd.client.bulk`) is
        secured the same way."""
        self.nursery = nursery
        self.bootstrap = bootstrap
        self.lost: ConnectionLost | None = None
        self._on_lost: list[Callable[[], None]] = []

    @property
    def local(self) -> bool:
        """On the daemon's own machine (a unix socket): shared memory can be used."""
        return self.address.kind == "unix"

    async def call(self, send: Callable[[], Any]) -> Any:
        """Send a request (``send()`` makes it) and await its result, errors translated."""
        if self.lost is not None:
            raise self.lost
        try:
            return await aio(send())
        except capnp.KjException as exc:
            raise translate(exc, str(self.address)) from None

    def on_lost(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the connection drops; returns a function that unregisters it."""
        self._on_lost.append(callback)
        return lambda: self._on_lost.remove(callback) if callback in self._on_lost else None

    async def _watch(self, client: Any) -> None:
        detail = ""
        try:
            await aio(client.on_disconnect())
        except Exception as exc:
            detail = str(exc)
        self.lost = connection_lost(str(self.address), detail)
        for callback in list(self._on_lost):
            callback()


@contextlib.asynccontextmanager
async def open_session(
    address: str | Address, *, tls_ca: str | None = None, server_hostname: str | None = None
) -> AsyncIterator[ClientSession]:
    """Connect to ``address``; raises :class:`~labd.client.errors.NoDaemon` if nothing answers."""
    addr = parse_address(address) if isinstance(address, str) else address
    ssl_context = client_tls_context(tls_ca) if addr.kind == "tls" else None
    hostname = (server_hostname or addr.host) if ssl_context is not None else None
    try:
        if addr.kind == "unix":
            assert addr.path is not None
            stream = await sockets.connect(addr.path)
        else:
            stream = await aio(
                capnp.AsyncIoStream.create_connection(
                    addr.host, addr.port, ssl=ssl_context, server_hostname=hostname
                )
            )
    except ssl.SSLError as exc:
        if exc.reason not in NOT_TLS:
            raise no_daemon(str(addr), str(exc)) from None
        raise NoDaemon(
            f"{addr} does not speak TLS ({exc.reason}): a labd daemon started without"
            f" --tls-cert is reached as {Address('tcp', host=addr.host, port=addr.port)}"
        ) from None
    except OSError as exc:
        raise no_daemon(str(addr), exc.strerror or str(exc)) from None
    client = capnp.TwoPartyClient(stream, traversal_limit_in_words=TRAVERSAL_LIMIT_WORDS)
    try:
        async with trio.open_nursery() as nursery:
            link = ClientSession(
                addr, nursery, client.bootstrap().cast_as(_s.Bootstrap), ssl_context, hostname
            )
            nursery.start_soon(link._watch, client)
            try:
                yield link
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The caller's code ran inside our nursery; give back its own error, not a group.
        raise _sole_exception(group) from None
    finally:
        client.close()
        stream.close()  # TwoPartyClient.close() leaves the socket open (docs/architecture.md)


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
