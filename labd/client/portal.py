"""The loop thread of the blocking client and the caller-side handles on its objects.

A background thread runs :func:`labd.aio.run` and owns *every* pycapnp object: releasing a
capability on another thread aborts the process (docs/architecture.md, measured facts). So
a handle holds only an integer id into the thread's table; calls are shipped over with
``trio.from_thread.run`` and return plain values, and a handle that is garbage-collected
asks the thread to drop its entry there. :mod:`labd.client.blocking` and
:mod:`labd.client.scripts` build their blocking objects on these.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import trio

from labd import aio
from labd.client.errors import ConnectionLost


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
