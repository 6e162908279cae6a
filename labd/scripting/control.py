"""The link between a run's guest thread and Trio: host calls, stop, pause, deadline.

A guest runs in a worker thread, so nothing in Trio can simply cancel it. Stopping a run
(cancel, deadline) therefore does two things at once: it bumps the epoch of the run's own
wasmtime Engine, which traps the guest at its next loop back-edge or function entry, and it
cancels the host call the guest is blocked in, if any (a ``wait_settled``, a
``sleep_ms``), which then returns ``E_CANCELLED``. Either way the thread is back within
milliseconds, and every later host call returns ``E_CANCELLED`` at once.

After ``run`` ends, however it ended, the guest's ``cleanup`` export runs in the same
thread (:meth:`RunControl.begin_cleanup`): the stop is forgotten, a cancel or deadline
that comes now is ignored, and the cleanup has its own small deadline instead, which a
timer thread enforces by bumping the epoch, and which bounds each of its host calls
(shielded from the run's cancellation, so a cancelled run can still switch things off).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import wasmtime

T = TypeVar("T")


class Stopped(Exception):
    """Raised in the guest thread by a host call when the run is being stopped."""


class RunControl:
    """Stop, pause and deadline of one run. Methods say which side may call them."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self.stop_reason: str | None = None
        """``"cancelled"`` or ``"deadline"`` once the run is being stopped."""
        self.pause_requested = False
        self.paused = False
        self.guest_done = False
        self._call_scope: trio.CancelScope | None = None
        self._resumed = trio.Event()
        self._clock_changed = trio.Event()
        self.on_pause_change: Callable[[], None] = lambda: None
        self.cleaning = False
        """The guest's ``cleanup`` export is running (see the module docstring)."""
        self._cleanup_ends = 0.0
        """``time.monotonic()`` at the cleanup's deadline."""
        self._lock = threading.Lock()
        """Orders a stop from Trio against the start of the cleanup in the guest thread."""

    # --- guest thread side -------------------------------------------------------------

    def call(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await afn(*args)`` in Trio and return its result; raises :class:`Stopped`."""
        if self.stop_reason is not None:
            raise Stopped(self.stop_reason)
        return trio.from_thread.run(self._hosted, afn, *args)

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the Trio thread (for state that only Trio may touch)."""
        return trio.from_thread.run_sync(fn, *args)

    def begin_cleanup(self, deadline_s: float) -> threading.Timer:
        """Enter the cleanup phase (guest thread, before calling ``cleanup``); returns the
        started timer that stops the cleanup at its deadline (cancel it afterwards)."""
        with self._lock:
            self.cleaning = True
            self.stop_reason = None
            self.pause_requested = False
            self._cleanup_ends = time.monotonic() + deadline_s
        timer = threading.Timer(deadline_s, self._cleanup_overdue)
        timer.daemon = True
        timer.start()
        return timer

    def _cleanup_overdue(self) -> None:
        with self._lock:
            self.stop_reason = "deadline"
            self._engine.increment_epoch()

    def checkpoint(self) -> None:
        """A pause point: blocks while the run is paused; raises :class:`Stopped`."""
        if self.stop_reason is not None:
            raise Stopped(self.stop_reason)
        if self.pause_requested:
            self.call(self._pause_here)

    # --- Trio side ----------------------------------------------------------------------

    async def _hosted(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self.stop_reason is not None:
            raise Stopped(self.stop_reason)
        with trio.CancelScope() as scope:
            if self.cleaning:
                scope.shield = True
                scope.deadline = trio.current_time() + self._cleanup_ends - time.monotonic()
            self._call_scope = scope
            try:
                return await afn(*args)
            finally:
                self._call_scope = None
        raise Stopped(self.stop_reason or "cancelled")

    async def _pause_here(self) -> None:
        if not self.pause_requested:
            return
        self.paused = True
        self._clock_changed.set()
        self.on_pause_change()
        try:
            await self._resumed.wait()
        finally:
            self.paused = False
            self._clock_changed.set()
            self.on_pause_change()

    def stop(self, reason: str) -> None:
        """Interrupt the guest wherever it is. The first reason given is the one reported.
        Ignored during the cleanup, which has its own deadline."""
        with self._lock:
            if self.cleaning:
                return
            if self.stop_reason is None:
                self.stop_reason = reason
            self._engine.increment_epoch()
            if self._call_scope is not None:
                self._call_scope.cancel()

    def pause(self) -> None:
        """Ask the guest to stop at its next ``checkpoint`` (not during its cleanup)."""
        if not self.cleaning:
            self.pause_requested = True

    def resume(self) -> None:
        self.pause_requested = False
        self._resumed.set()
        self._resumed = trio.Event()

    async def watchdog(self, deadline_s: float) -> None:
        """Stop the run at its deadline (paused time does not count), or when cancelled.

        Runs beside the guest thread, in the run's cancel scope, so that cancelling the run
        (or the daemon) lands here and becomes an epoch bump.
        """
        remaining = deadline_s
        try:
            while remaining > 0:
                if self.paused:
                    self._clock_changed = trio.Event()
                    await self._clock_changed.wait()
                    continue
                started = trio.current_time()
                self._clock_changed = trio.Event()
                with trio.move_on_after(remaining):
                    await self._clock_changed.wait()
                remaining -= trio.current_time() - started
            self.stop("deadline")
            await trio.sleep(math.inf)
        finally:
            if not self.guest_done:
                self.stop("cancelled")
