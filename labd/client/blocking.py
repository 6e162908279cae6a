"""The blocking client: plain function calls for scripts and Jupyter, no event loop in sight.

A background thread runs :func:`labd.aio.run` and owns *every* pycapnp object: releasing a
capability on another thread aborts the process (docs/architecture.md, measured facts). So the objects handed to
the caller hold only an integer id into the thread's table; calls are shipped over with
``trio.from_thread.run`` and return plain values (readings, frames, Arrow batches), and a
wrapper that is garbage-collected asks the thread to drop its entry there.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import trio

from labd import aio
from labd.client.errors import ConnectionLost
from labd.client.lab import (
    InstrumentInfo,
    Message,
    Restriction,
    ShareInfo,
    StreamInfo,
    connect,
    redeem,
)

if TYPE_CHECKING:
    from labd.client.replay import DataInfo
    from labd.client.scripts import BlockingScripts

T = TypeVar("T")


class _Portal:
    """The loop thread, its table of live objects, and the way calls get there."""

    def __init__(self, opener: Callable[[], contextlib.AbstractAsyncContextManager[Any]]) -> None:
        self._opener = opener
        self._objects: dict[int, Any] = {}
        self._ids = itertools.count(1)
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="labd-client", daemon=True
        )
        self._thread.start()
        self.root = ready.result()  # connection errors surface here, in the caller's thread
        atexit.register(self.close)

    def _thread_main(self, ready: concurrent.futures.Future[int]) -> None:
        try:
            aio.run(self._serve, ready, handle_signals=False)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)

    async def _serve(self, ready: concurrent.futures.Future[int]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        try:
            async with self._opener() as root:
                ready.set_result(self.keep(root))
                await self._stop.wait()
        finally:
            self._objects.clear()  # the last references die here, on the loop thread

    # -- in the loop thread
    def keep(self, obj: Any) -> int:
        key = next(self._ids)
        self._objects[key] = obj
        return key

    def get(self, key: int) -> Any:
        return self._objects[key]

    # -- from the caller's thread
    def run(self, afn: Callable[..., Any], *args: Any) -> Any:
        """Run ``afn(*args)`` on the loop thread and wait for its (plain) result."""
        if self._token is None or not self._thread.is_alive():
            raise ConnectionLost("this labd client is closed; connect again")
        try:
            return trio.from_thread.run(afn, *args, trio_token=self._token)
        except trio.RunFinishedError:
            raise ConnectionLost("this labd client is closed; connect again") from None

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._token is None or not self._thread.is_alive():
            raise ConnectionLost("this labd client is closed; connect again")
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def call(self, key: int, method: str, *args: Any) -> Any:
        async def invoke() -> Any:
            return await getattr(self._objects[key], method)(*args)

        return self.run(invoke)

    def release(self, key: int) -> None:
        token = self._token
        if token is None or not self._thread.is_alive():
            return
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(self._objects.pop, key, None)

    def close(self) -> None:
        stop = self._stop
        if stop is not None and self._thread.is_alive() and self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(stop.set, trio_token=self._token)
            self._thread.join(timeout=5)


class _Handle:
    """A caller-side stand-in for one object living on the loop thread."""

    def __init__(self, portal: _Portal, key: int) -> None:
        self._portal = portal
        self._key = key
        weakref.finalize(self, portal.release, key)

    def _call(self, method: str, *args: Any) -> Any:
        return self._portal.call(self._key, method, *args)

    def _derive(self, make: Callable[[Any], Any]) -> int:
        """Keep ``make(this object)`` (made on the loop thread); returns its key."""
        portal, key = self._portal, self._key
        return int(portal.run_sync(lambda: portal.keep(make(portal.get(key)))))

    def _derive_async(self, make: Callable[[Any], Any]) -> int:
        portal, key = self._portal, self._key

        async def run() -> int:
            return portal.keep(await make(portal.get(key)))

        return int(portal.run(run))


class BlockingCapability(_Handle):
    """A capability whose Protocol methods are plain blocking calls:
    ``stage.move_abs(3.0)`` instead of ``await stage.move_abs(3.0)``."""

    def __init__(self, portal: _Portal, key: int, capability: type) -> None:
        super().__init__(portal, key)
        self._capability = capability
        self._methods = {
            name for name, v in vars(capability).items() if not name.startswith("_") and callable(v)
        }

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(
                f"{self._capability.__name__} has no method {name!r};"
                f" it has: {', '.join(sorted(self._methods))}"
            )
        return lambda *args: self._call(name, *args)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | self._methods)


class BlockingSubscription(_Handle):
    """Iterate to receive pushed batches; ``close()`` (or leave the ``with``) to stop."""

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self._call("__anext__")
        except StopAsyncIteration:
            raise StopIteration from None

    def next(self, timeout: float) -> Any:
        """The next item, or TimeoutError after ``timeout`` seconds."""
        portal, key = self._portal, self._key

        async def receive() -> Any:
            with trio.fail_after(timeout):
                return await portal.get(key).__anext__()

        try:
            return portal.run(receive)
        except trio.TooSlowError:
            raise TimeoutError(f"nothing pushed within {timeout:g} s") from None

    def stats(self) -> tuple[int, int]:
        result: tuple[int, int] = self._call("stats")
        return result

    def close(self) -> None:
        with contextlib.suppress(ConnectionLost):
            self._call("__aexit__", None, None, None)

    def __enter__(self) -> BlockingSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlockingMessages(BlockingSubscription):
    def __next__(self) -> Message:
        message: Message = super().__next__()
        return message


class BlockingRevoker(_Handle):
    def revoke(self) -> None:
        self._call("revoke")


class BlockingInstrument(_Handle):
    def info(self) -> InstrumentInfo:
        info: InstrumentInfo = self._call("info")
        return info

    def capabilities(self) -> list[str]:
        names: list[str] = self._call("capabilities")
        return names

    def get(self, capability: type[T]) -> BlockingCapability:
        """The instrument's ``capability``, with blocking methods."""
        key = self._derive_async(lambda inst: inst.get(capability))
        return BlockingCapability(self._portal, key, capability)

    def restrict(self, restriction: Restriction) -> BlockingInstrument:
        return BlockingInstrument(
            self._portal, self._derive_async(lambda i: i.restrict(restriction))
        )

    def share(self, restriction: Restriction | None = None) -> tuple[str, BlockingRevoker]:
        portal, key = self._portal, self._key

        async def share() -> tuple[str, int]:
            token, revoker = await portal.get(key).share(restriction)
            return token, portal.keep(revoker)

        token, revoker_key = portal.run(share)
        return token, BlockingRevoker(portal, revoker_key)

    def subscribe(
        self,
        stream: str,
        *,
        max_rate: float = 0.0,
        window: int = 2,
        shared_memory: bool | None = None,
    ) -> BlockingMessages:
        """See :meth:`labd.client.Lab.subscribe`."""
        return _open_feed(
            self,
            lambda i: i.subscribe(
                stream, max_rate=max_rate, window=window, shared_memory=shared_memory
            ),
        )


class BlockingLab(_Handle):
    """The lab, with blocking calls. Close it (or use ``with``) to end the connection."""

    def __init__(self, portal: _Portal) -> None:
        super().__init__(portal, portal.root)

    def instruments(self) -> list[InstrumentInfo]:
        infos: list[InstrumentInfo] = self._call("instruments")
        return infos

    def instrument(self, name: str) -> BlockingInstrument:
        return BlockingInstrument(self._portal, self._derive(lambda lab: lab.instrument(name)))

    def streams(self) -> list[StreamInfo]:
        streams: list[StreamInfo] = self._call("streams")
        return streams

    def subscribe(
        self,
        stream: str,
        *,
        max_rate: float = 0.0,
        window: int = 2,
        shared_memory: bool | None = None,
    ) -> BlockingMessages:
        """See :meth:`labd.client.Lab.subscribe`."""
        return _open_feed(
            self,
            lambda lab: lab.subscribe(
                stream, max_rate=max_rate, window=window, shared_memory=shared_memory
            ),
        )

    def watch_states(self) -> BlockingSubscription:
        """Iterate to receive :class:`StateChange` items."""
        return _open_feed(self, lambda lab: lab.watch_states())

    def shares(self) -> list[ShareInfo]:
        shares: list[ShareInfo] = self._call("shares")
        return shares

    def revoke(self, token: str) -> None:
        self._call("revoke", token)

    def scripts(self) -> BlockingScripts:
        """The daemon's script engine, with blocking calls (see labd.client.scripts)."""
        from labd.client.scripts import BlockingScripts  # it builds on this module

        return BlockingScripts(self._portal, self._derive_async(lambda lab: lab.scripts()))

    def replay(self, stream: str, start: float, end: float) -> pa.Table:
        """See :meth:`labd.client.Lab.replay`."""
        table: pa.Table = self._call("replay", stream, start, end)
        return table

    def data_info(self) -> DataInfo:
        """See :meth:`labd.client.Lab.data_info`."""
        info: DataInfo = self._call("data_info")
        return info

    def close(self) -> None:
        self._portal.close()

    def __enter__(self) -> BlockingLab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open_feed(owner: _Handle, make: Callable[[Any], Any]) -> BlockingMessages:
    async def enter(obj: Any) -> Any:
        feed = make(obj)
        return await feed.__aenter__()

    return BlockingMessages(owner._portal, owner._derive_async(enter))


def connect_blocking(
    address: str | None = None,
    *,
    token: str | None = None,
    token_file: str | None = None,
    tls_ca: str | None = None,
    server_hostname: str | None = None,
) -> BlockingLab:
    """Blocking :func:`labd.client.connect`: same arguments, returns a :class:`BlockingLab`."""

    def opener() -> contextlib.AbstractAsyncContextManager[Any]:
        return connect(
            address,
            token=token,
            token_file=token_file,
            tls_ca=tls_ca,
            server_hostname=server_hostname,
        )

    return BlockingLab(_Portal(opener))


class BlockingShared(BlockingInstrument):
    """A redeemed instrument: it owns its connection, so close it when done."""

    def close(self) -> None:
        self._portal.close()

    def __enter__(self) -> BlockingShared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redeem_blocking(
    share_token: str,
    address: str | None = None,
    *,
    tls_ca: str | None = None,
    server_hostname: str | None = None,
) -> BlockingShared:
    """Blocking :func:`labd.client.redeem`."""

    def opener() -> contextlib.AbstractAsyncContextManager[Any]:
        return redeem(share_token, address, tls_ca=tls_ca, server_hostname=server_hostname)

    portal = _Portal(opener)
    return BlockingShared(portal, portal.root)
