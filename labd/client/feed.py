"""What subscriptions, state watches and script logs share: a channel fed by a
client-side server that the daemon calls."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import trio

from labd.aio import aio
from labd.client.session import ClientSession


async def _deliver(send: trio.MemorySendChannel[Any], item: Any) -> None:
    """Hand ``item`` to the consumer; a consumer that has left makes it a no-op (its
    subscription is being cancelled, so the daemon stops pushing anyway)."""
    with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
        await send.send(item)


class _Feed:
    """What subscriptions and state watches share: a channel fed by a client-side server,
    a remote Subscription to cancel, and the connection's loss turned into an error."""

    def __init__(
        self, link: ClientSession, open_remote: Callable[[Any], Any], server: Callable[..., Any]
    ) -> None:
        self._link = link
        self._open_remote = open_remote
        self._server = server
        self._subscription: Any = None
        self._endpoint: Any = None
        """The client-side server the daemon calls (a ``_Sink`` or ``_Watcher``)."""
        # No buffer: a push returns only when the consumer takes it, so a slow consumer
        # holds at most ``window`` batches older than the newest (latest-wins end to end).
        self._send, self._receive = trio.open_memory_channel[Any](0)
        self._unregister: Callable[[], None] | None = None

    async def __aenter__(self) -> _Feed:
        server = self._endpoint = self._server(self._link.nursery, self._send)
        result = await self._link.call(lambda: self._open_remote(server))
        self._subscription = result.subscription
        self._unregister = self._link.on_lost(self._send.close)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unregister is not None:
            self._unregister()
        self._send.close()
        self._receive.close()
        if self._link.lost is None and self._subscription is not None:
            with trio.move_on_after(2) as scope:
                scope.shield = True
                with contextlib.suppress(Exception):
                    await aio(self._subscription.cancel())
        self._subscription = None

    async def _next(self) -> Any:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._link.lost is not None:
                raise self._link.lost from None
            raise StopAsyncIteration from None

    async def stats(self) -> tuple[int, int]:
        """(sent, skipped) as the daemon counts them for this subscription."""
        result = await self._link.call(self._subscription.stats)
        return int(result.sent), int(result.skipped)
