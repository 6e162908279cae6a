"""Trio's guest mode without its I/O thread: asyncio's selector waits for Trio too.

In guest mode (:mod:`labd.aio`) Trio runs its scheduling steps as callbacks on the host's
asyncio loop, but when it has nothing to run it waits for I/O (``epoll_wait``) in a
worker thread of its own. Every time an asyncio callback then wakes a Trio task — each
incoming RPC call in the daemon, each reply in a client — Trio writes to its wake-up
socket, its I/O thread returns from ``epoll_wait`` and posts the next step to asyncio with
``call_soon_threadsafe``, which writes asyncio's own self-pipe: two thread hand-offs per
crossing. Measured on the 2-core test machine: ~80 µs per asyncio→Trio hand-off, half of
that without the thread (docs/architecture.md, "Trio as a guest of asyncio").

Trio's epoll instance is itself a file descriptor that becomes readable when one of its
own descriptors is ready, the wake-up socket included. So instead of a thread, Trio's
epoll is registered once with asyncio's selector, and Trio's wait is that registration
plus an asyncio timer for Trio's next deadline: when either fires, Trio collects its
events without blocking (``get_events(0)``) and takes its next step, all on the loop
thread. And when an asyncio callback on the loop thread wakes a waiting Trio (the common
case: a reply or a request arrived), the next step is simply queued with ``call_soon`` —
no wake-up socket written and read back. Wake-ups from other threads
(``trio.from_thread``, worker threads finishing) still go through the wake-up socket,
which now wakes asyncio's selector. Trio's own logic (which events, which deadlines, when
to force a step) is unchanged; only where the waiting happens moves.

This replaces two methods of Trio's private classes (``GuestState.guest_tick``,
``Runner.force_guest_tick_asap``); :func:`install` checks that
the Trio in use has the shape this was written against (the version pinned in uv.lock)
and otherwise leaves Trio as it is, so an unexpected Trio costs speed, never correctness.
A guest run whose host is not an asyncio loop on epoll keeps the stock method too.
"""

from __future__ import annotations

import asyncio
import inspect
import select
import threading
from collections.abc import Callable
from typing import Any

import outcome
import trio
from sniffio import thread_local as sniffio_library
from trio._core import _run

STOCK_ENV = "LABD_TRIO_IO_THREAD"
"""Set (to anything) in a process's environment, :func:`labd.aio.run` leaves Trio's guest
mode as shipped: for comparing the two (``bench/bench_rpc.py``) and as a way out should
this module ever misbehave."""

_stock: dict[str, Callable[[Any], None]] = {}
_waiters: dict[object, _Waiter] = {}  # runner -> its waiter, while its guest run lasts


def install() -> bool:
    """Make every later Trio guest run on an asyncio loop wait in that loop; idempotent.

    Returns whether it is in effect (False: this Trio differs from the one it was written
    for, and guest mode keeps its I/O thread).
    """
    if _stock:
        return True
    guest_state, runner = getattr(_run, "GuestState", None), getattr(_run, "Runner", None)
    tick = getattr(guest_state, "guest_tick", None)
    force = getattr(runner, "force_guest_tick_asap", None)
    if tick is None or force is None or not _looks_like_trio_we_know(tick, force):
        return False
    _stock.update(guest_tick=tick, force_guest_tick_asap=force)
    guest_state.guest_tick = _guest_tick  # type: ignore[union-attr]
    runner.force_guest_tick_asap = _force_guest_tick_asap  # type: ignore[union-attr]
    return True


def _looks_like_trio_we_know(tick: Callable[..., None], force: Callable[..., None]) -> bool:
    try:
        sources = inspect.getsource(tick) + inspect.getsource(force)
    except (OSError, TypeError):
        return False
    return (
        all(
            needle in sources
            for needle in (
                "self.unrolled_run_next_send.send(self.unrolled_run_gen)",
                "self.runner.io_manager.get_events",
                "self.runner.guest_tick_scheduled = False",
                "start_thread_soon(get_events, deliver)",
                "self.guest_tick_scheduled = True",
                "self.io_manager.force_wakeup()",
            )
        )
        and getattr(_run, "sniffio_library", None) is sniffio_library
    )


class _Waiter:
    """Where one guest run waits: its epoll registered with the host loop, and a timer."""

    def __init__(self, guest: Any, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.guest, self.loop, self.fd = guest, loop, fd
        self.thread = threading.get_ident()
        self.waiting = False
        self.timer: asyncio.TimerHandle | None = None
        loop.add_reader(fd, self.ready)

    def wait(self, timeout: float) -> None:
        self.waiting = True
        self.timer = self.loop.call_later(timeout, self.ready)

    def ready(self) -> None:
        # Also called for events that arrive while Trio is busy (the reader stays
        # registered): those it collects in the step already queued.
        if not self.waiting:
            return
        self.waiting = False
        if self.timer is not None:
            self.timer.cancel()
        guest = self.guest
        guest.unrolled_run_next_send = outcome.capture(guest.runner.io_manager.get_events, 0)
        guest.runner.guest_tick_scheduled = True
        guest.guest_tick()

    def close(self) -> None:
        self.waiting = False
        if self.timer is not None:
            self.timer.cancel()
        self.loop.remove_reader(self.fd)


def _guest_tick(self: Any) -> None:
    """Trio 0.35's ``GuestState.guest_tick``, its thread replaced by the host loop's wait."""
    waiter = _waiters.get(self.runner)
    if waiter is None:
        loop = getattr(self.run_sync_soon_not_threadsafe, "__self__", None)
        epoll = getattr(self.runner.io_manager, "_epoll", None)
        if not isinstance(loop, asyncio.AbstractEventLoop) or not isinstance(epoll, select.epoll):
            _stock["guest_tick"](self)
            return
        waiter = _waiters[self.runner] = _Waiter(self, loop, epoll.fileno())
    prev_library, sniffio_library.name = sniffio_library.name, "trio"
    try:
        timeout = self.unrolled_run_next_send.send(self.unrolled_run_gen)
    except StopIteration:
        _waiters.pop(self.runner).close()
        self.done_callback(self.runner.main_task_outcome)
        return
    except trio.TrioInternalError as exc:
        _waiters.pop(self.runner).close()
        self.done_callback(outcome.Error(exc))
        return
    finally:
        sniffio_library.name = prev_library

    events = outcome.capture(self.runner.io_manager.get_events, 0)
    if timeout <= 0 or isinstance(events, outcome.Error) or events.value:
        self.unrolled_run_next_send = events
        self.runner.guest_tick_scheduled = True
        self.run_sync_soon_not_threadsafe(self.guest_tick)
        return
    # Nothing to do until Trio's descriptors (its wake-up socket among them) have events
    # or its next deadline passes: wait for either in the loop, not in a thread.
    self.runner.guest_tick_scheduled = False
    waiter.wait(timeout)


def _force_guest_tick_asap(self: Any) -> None:
    """Trio's ``Runner.force_guest_tick_asap``: on the loop thread, queue the step."""
    if self.guest_tick_scheduled:
        return
    waiter = _waiters.get(self)
    if waiter is None or not waiter.waiting or threading.get_ident() != waiter.thread:
        _stock["force_guest_tick_asap"](self)
        return
    self.guest_tick_scheduled = True
    waiter.loop.call_soon(waiter.ready)
