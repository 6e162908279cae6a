"""Trio as a guest on pycapnp's asyncio loop: the glue between the two schedulers.

pycapnp only runs on an asyncio loop (``capnp.kj_loop()`` binds the KJ event loop to it),
while labd is a Trio program. Trio's *guest mode* lets both share one thread: asyncio is
the host, Trio ticks inside it (measured as the fastest arrangement, docs/architecture.md "Facts measured on this stack";
trio-asyncio was 1.6–3× slower, and a second thread aborts the process when a capability
is released there). Since both run on the same thread, a Trio task can be rescheduled
straight from an asyncio callback and vice versa; this module holds the three crossings:

- :func:`run` starts the pair and is the entry point of every process that uses pycapnp;
  it also moves Python's cyclic garbage collection onto the loop thread (below);
- :func:`aio` awaits an asyncio awaitable (a pycapnp promise) from Trio; cancelling the
  Trio task cancels the asyncio future, which drops the KJ promise and so cancels the
  call on the remote side;
- :func:`to_trio` runs Trio code from an asyncio coroutine (a pycapnp server method);
  cancelling that coroutine (the remote caller went away or cancelled) cancels the Trio
  work.

Garbage collection happens on the loop thread only. A pycapnp object (a capability, a
promise, a message) must be freed on the thread that runs its KJ loop; freed anywhere else
the process aborts ("No event loop is running on this thread", docs/architecture.md).
Reference counting frees most objects where their last user drops them, on the loop. But
an object caught in a reference cycle (an exception whose traceback holds the frame that
holds a promise) is freed by the cyclic collector, and CPython runs that on whichever
thread happens to allocate past the threshold: a script's wasmtime thread, Trio's
thread cache or guest-mode I/O thread, a user's own thread next to a blocking client.
Breaking each cycle by hand fixes the cycles we know of; this fixes the class: while
:func:`run` runs, automatic collection is off (``gc.disable()``) and the loop's tick
collects every :data:`TICK_S` whichever generation CPython itself would have collected
by then (:func:`collect_due`). :func:`freeze_long_lived` then keeps the daemon's start-up
objects out of every later collection, so the collections on the loop stay short.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import capnp
import outcome
import trio

from labd import guest

T = TypeVar("T")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc() -> None:
    """Keep glibc from mmap/munmap-ing every big message buffer, and from keeping an arena
    per thread.

    Cap'n Proto allocates a fresh segment per message; past glibc's default 128 KiB mmap
    threshold each frame is a fresh mapping whose pages fault in on first touch, which made
    ≥1 MiB messages 3–4× slower (docs/architecture.md, "Facts measured on this stack"). Same effect as the GLIBC_TUNABLES variant,
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
    # Two arenas, not 8 per core: each worker thread's own arena kept freed memory that no
    # other thread reused. 35-minute soaks side by side (bench/README.md, "Soak"): the
    # private heap's growth in the last quarter hour fell from ~14 to ~3 MiB/h; frames/s
    # through lanes unchanged within the runs' noise.
    mallopt(_M_ARENA_MAX, 2)


TICK_S = 0.05
"""The loop's own tick (:func:`on_tick`): how often it looks whether a collection is due,
so garbage waits at most this long. The look is three integer reads; the wake-up is an
asyncio timer, about 0.15 ms of CPU on the 2-core test machine (a Trio sleep costs 0.7 ms
there: in guest mode it goes through Trio's I/O thread)."""

FULL_COLLECTION_GROWTH = 0.25
"""A full collection only once the oldest generation grew by a quarter since the last one:
CPython's own rule, which keeps full collections from making a growing heap quadratic."""


def run(main: Callable[..., Awaitable[T]], *args: Any, handle_signals: bool = True) -> T:
    """Run the Trio function ``main(*args)`` with a live pycapnp (KJ) loop, return its result.

    SIGINT and SIGTERM cancel ``main`` (so its ``finally:`` blocks and nursery shutdown
    run) instead of raising KeyboardInterrupt at an arbitrary point. Pass
    ``handle_signals=False`` when running in a thread other than the main one.

    While it runs, garbage is collected on this thread only (see the module's docstring);
    the collector's previous state is restored once the last such loop has ended.
    """
    tune_malloc()
    return asyncio.run(_host(main, args, handle_signals))


class _Collectors:
    """The loops of this process that run :func:`run` (several blocking clients may each
    have one): the oldest collects for all, automatic collection is back on after the last.

    Objects of a second loop can still be freed on the first loop's thread; one loop per
    process (the daemon, a client program) is the case this makes safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[int] = []
        self._was_enabled = False
        self.full_after = 0  # size of the oldest generation that makes a full collection due

    def enter(self) -> None:
        with self._lock:
            if not self._threads:
                self._was_enabled = gc.isenabled()
                gc.disable()
                self.full_after = 0
            self._threads.append(threading.get_ident())

    def is_collector(self) -> bool:
        return bool(self._threads) and self._threads[0] == threading.get_ident()

    def leave(self) -> None:
        """Collect what this loop left (its thread, its KJ loop still alive); the last
        loop out gives the frozen objects back and restores automatic collection."""
        with self._lock:
            if self.is_collector():
                gc.collect()
            self._threads.remove(threading.get_ident())
            if not self._threads:
                gc.unfreeze()
                if self._was_enabled:
                    gc.enable()


_collectors = _Collectors()


def collect_due() -> int | None:
    """Collect, on this thread, the generation CPython would collect now; returns it.

    Mirrors CPython's own schedule (``gc.get_threshold()``, ``gc.get_count()``): nothing
    until the youngest generation saw that many allocations; then the oldest generation
    whose count of collections below it is past its threshold, the oldest of all only once
    it grew by :data:`FULL_COLLECTION_GROWTH`.
    """
    counts, thresholds = gc.get_count(), gc.get_threshold()
    if thresholds[0] == 0 or counts[0] <= thresholds[0]:  # off, or too few allocations
        return None
    due = 0
    if counts[1] > thresholds[1]:
        due = 1
        # Sizing the oldest generation walks it: only when a middle collection is due anyway.
        if counts[2] > thresholds[2] and len(gc.get_objects(2)) >= _collectors.full_after:
            due = 2
    gc.collect(due)
    if due == 2:
        _collectors.full_after = int(len(gc.get_objects(2)) * (1 + FULL_COLLECTION_GROWTH))
    return due


def freeze_long_lived() -> None:
    """Leave every object alive now out of later collections (``gc.freeze()``).

    For a long-running process once it has started (the daemon, ready to serve): its
    modules, configuration and services live until it exits. Rescanning them made each full
    collection a stall of its own: 0.2-0.3 s for the daemon's 85,000 start-up objects (with
    pandas loaded) on the 2-core test machine; frozen, well under a millisecond. A no-op
    outside :func:`run`.
    """
    if _collectors.is_collector():
        gc.freeze()


class _Tick:
    """Every :data:`TICK_S`, on the loop: whatever collection is due, then the hooks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.hooks: list[Callable[[], None]] = []
        self._handle = loop.call_later(TICK_S, self._tick)

    def _tick(self) -> None:
        if _collectors.is_collector():
            collect_due()
        for hook in list(self.hooks):
            hook()
        self._handle = self._loop.call_later(TICK_S, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()


_ticks: dict[asyncio.AbstractEventLoop, _Tick] = {}


def on_tick(hook: Callable[[], None]) -> Callable[[], None]:
    """Call ``hook()`` on every tick of this :func:`run` loop; returns the function that
    stops it. For a heartbeat that costs no wake-up of its own (:mod:`labd.loopwatch`)."""
    try:
        tick = _ticks[asyncio.get_running_loop()]
    except (RuntimeError, KeyError):
        raise RuntimeError("on_tick needs the loop of labd.aio.run") from None
    tick.hooks.append(hook)
    return lambda: tick.hooks.remove(hook) if hook in tick.hooks else None


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
        _collectors.enter()
        _ticks[loop] = _Tick(loop)
        if not os.environ.get(guest.STOCK_ENV):
            guest.install()
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
            _ticks.pop(loop).cancel()
            _collectors.leave()
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
