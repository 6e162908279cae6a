"""Trio as a guest on pycapnp's asyncio loop: the glue between the two schedulers.

pycapnp only runs on an asyncio loop (``capnp.kj_loop()`` binds the KJ event loop to it),
while labd is a Trio program. Trio's *guest mode* lets both share one thread: asyncio is
the host, Trio ticks inside it (DESIGN.md §3 measured this as the fastest arrangement;
trio-asyncio was 1.6–3× slower, and a second thread aborts the process when a capability
is released there). Since both run on the same thread, a Trio task can be rescheduled
straight from an asyncio callback and vice versa; this module holds the three crossings:

- :func:`run` starts the pair and is the entry point of every process that uses pycapnp;
- :func:`aio` awaits an asyncio awaitable (a pycapnp promise) from Trio; cancelling the
  Trio task cancels the asyncio future, which drops the KJ promise and so cancels the
  call on the remote side;
- :func:`to_trio` runs Trio code from an asyncio coroutine (a pycapnp server method);
  cancelling that coroutine (the remote caller went away or cancelled) cancels the Trio
  work.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import capnp
import outcome
import trio

T = TypeVar("T")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> None:
    """Keep glibc from mmap/munmap-ing every big message buffer.

    Cap'n Proto allocates a fresh segment per message; past glibc's default 128 KiB mmap
    threshold each frame is a fresh mapping whose pages fault in on first touch, which made
    ≥1 MiB messages 3–4× slower (DESIGN.md §3). Same effect as the GLIBC_TUNABLES variant,
    without needing a re-exec. A no-op on a libc without ``mallopt``.
    """
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return
    mallopt(_M_MMAP_THRESHOLD, 64 * 1024 * 1024)
    mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)


def run(main: Callable[..., Awaitable[T]], *args: Any, handle_signals: bool = True) -> T:
    """Run the Trio function ``main(*args)`` with a live pycapnp (KJ) loop, return its result.

    SIGINT and SIGTERM cancel ``main`` (so its ``finally:`` blocks and nursery shutdown
    run) instead of raising KeyboardInterrupt at an arbitrary point. Pass
    ``handle_signals=False`` when running in a thread other than the main one.
    """
    tune_malloc()
    return asyncio.run(_host(main, args, handle_signals))


async def _host(
    main: Callable[..., Awaitable[T]], args: tuple[Any, ...], handle_signals: bool
) -> T:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[outcome.Outcome[T | None]] = loop.create_future()
    scope = trio.CancelScope()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        scope.cancel()

    async def guarded() -> T | None:
        with scope:
            return await main(*args)
        return None  # cancelled by a signal; reported below once Trio has shut down

    async with capnp.kj_loop():
        trio.lowlevel.start_guest_run(
            guarded,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done.set_result,
            host_uses_signal_set_wakeup_fd=True,
            strict_exception_groups=True,
        )
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            result = (await done).unwrap()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
    if received and scope.cancelled_caught:
        if received[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + received[0])
    return result  # type: ignore[return-value]  # None only when a signal cancelled main


async def aio(awaitable: Awaitable[T]) -> T:
    """Await an asyncio awaitable (typically a pycapnp promise) from a Trio task.

    A Trio cancellation cancels the asyncio side; for a pycapnp call that sends a cancel
    to the remote server.
    """
    future = asyncio.ensure_future(awaitable)
    if future.done():
        return future.result()
    task = trio.lowlevel.current_task()
    aborted = False

    def on_done(fut: asyncio.Future[T]) -> None:
        if aborted:
            return
        if fut.cancelled():  # not by us: the KJ loop or the connection is shutting down
            error = ConnectionAbortedError("the pycapnp operation was cancelled (loop closing)")
            trio.lowlevel.reschedule(task, outcome.Error(error))
        else:
            trio.lowlevel.reschedule(task, outcome.capture(fut.result))

    def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        nonlocal aborted
        aborted = True
        future.cancel()
        future.add_done_callback(_consume_result)
        return trio.lowlevel.Abort.SUCCEEDED

    future.add_done_callback(on_done)
    result: T = await trio.lowlevel.wait_task_rescheduled(abort)
    return result


def _consume_result(fut: asyncio.Future[Any]) -> None:
    # A cancelled call may still finish with an error; read it so asyncio does not log
    # "exception was never retrieved" for a result nobody wanted.
    if not fut.cancelled():
        fut.exception()


async def to_trio(nursery: trio.Nursery, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """From asyncio code on the guest loop, run ``afn(*args)`` as a Trio task in ``nursery``.

    Exceptions propagate to the awaiting coroutine; cancelling that coroutine cancels the
    Trio task. If ``nursery`` itself is cancelled (daemon shutdown) the awaiting coroutine
    is cancelled too.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    scope = trio.CancelScope()

    async def body() -> None:
        try:
            with scope:
                result = await afn(*args)
                if not future.done():
                    future.set_result(result)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        finally:
            if not future.done():
                future.cancel()

    nursery.start_soon(body)
    try:
        return await future
    except asyncio.CancelledError:
        scope.cancel()
        raise


def spawn_asyncio(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Start an asyncio task from Trio code (fire and forget, the task is kept referenced)."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


_background: set[asyncio.Future[Any]] = set()
