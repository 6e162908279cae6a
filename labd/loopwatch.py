"""Watch the event loop's health: notice every stall, say what caused it, remember it.

Everything the daemon does runs on one thread (Trio as a guest on pycapnp's asyncio loop,
docs/architecture.md), so any import, blocking call or long computation there freezes every
stream, call and timeout at once. Two observers catch that:

- a **heartbeat** on the loop, riding the loop's own tick (:func:`labd.aio.on_tick`, every
  :data:`labd.aio.TICK_S`, so it costs no wake-up of its own): each time a tick comes late
  by more than :data:`STALL_S`, the loop did not run for that long. The stall is recorded
  (for :func:`stalled_seconds`) and logged on ``labd.loop``, one line;
- a **watchdog** thread looks at the heartbeat while it is overdue and samples the loop
  thread's top frames (``sys._current_frames()``): that is the "what was running" of the log
  line. When the watchdog could not sample either and the process used little CPU during
  the gap, nothing in the process ran (SIGSTOP, a VM pause, an overloaded host): the stall
  is logged as the whole daemon's, not the loop's.

:func:`stalled_seconds` lets timeouts blame the right party: the supervisor subtracts the
daemon's own stall from a call's elapsed time before deciding that a driver is too slow.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
import time
import traceback
import types
from collections import deque
from dataclasses import dataclass

import trio

from labd import aio

log = logging.getLogger("labd.loop")

HEARTBEAT_S = aio.TICK_S
"""The heartbeat's period. A stall is measured as the lateness of a beat, so up to one
period of it can go unseen: every stall over ``STALL_S + HEARTBEAT_S`` is caught, and
its measure is short by at most ``HEARTBEAT_S``."""

STALL_S = 0.1
"""A beat later than this means a stall, logged and recorded."""

WATCHDOG_S = 0.05
"""How often the watchdog thread looks at an overdue heartbeat; while the heartbeat is on
time it only wakes up when the next beat is due."""

KEPT_STALLS = 1024
"""Stalls remembered for :func:`stalled_seconds`; older ones are forgotten (the supervisor
asks about the last call's few seconds, never further back)."""

FRAMES_SHOWN = 3
"""Innermost frames of the loop thread quoted in a stall's log line."""

LOG_EVERY_S = 1.0
"""Short loop stalls get at most one line per second: on an overloaded host they come in
runs, so those within a second of the last line are counted into the next one. A stall of
a second or more, and a stop of the whole process, always get their own line."""


@dataclass(frozen=True)
class Stall:
    """The loop did not tick from ``start`` to ``end`` (``trio.current_time()`` clock)."""

    start: float
    end: float
    process_stopped: bool
    """True when the whole process was not running (no thread ran, little CPU was used)."""
    running: str
    """What the loop thread was running, as sampled by the watchdog ("" when unsampled)."""

    @property
    def seconds(self) -> float:
        return self.end - self.start


def stalled_seconds(t0: float, t1: float) -> float:
    """Seconds between ``t0`` and ``t1`` (``trio.current_time()`` clock) the loop was seen
    stalled; 0.0 when no watch runs in this process.

    Includes a stall that has just ended but that the heartbeat has not recorded yet:
    called on the loop right after a SIGCONT, the answer already holds the stop.
    """
    watch = _active
    if watch is None or t1 <= t0:
        return 0.0
    return watch.stalled_seconds(t0, t1)


class LoopWatch:
    """The heartbeat and its watchdog thread, for as long as :meth:`run` runs."""

    def __init__(self) -> None:
        self.stalls: deque[Stall] = deque(maxlen=KEPT_STALLS)
        self._offset = 0.0  # trio.current_time() - time.perf_counter()
        self._loop_thread = 0
        self._beat = 0.0  # the heartbeat's last beat (perf_counter), read by the watchdog
        self._cpu = 0.0  # the process's CPU time then
        self._sample: tuple[float, str] = (0.0, "")  # (the beat it is overdue from, frames)
        self._stop = threading.Event()
        self._logged_at = -math.inf
        self._unlogged: list[Stall] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the loop until cancelled. Needs the loop of :func:`labd.aio.run`; one
        watch per process (the latest one answers :func:`stalled_seconds`)."""
        global _active
        self._offset = trio.current_time() - time.perf_counter()
        self._loop_thread = threading.get_ident()
        self._beat, self._cpu = time.perf_counter(), time.process_time()
        stop_beating = aio.on_tick(self._heartbeat)
        watchdog = threading.Thread(
            target=self._watchdog,
            args=(asyncio.get_running_loop(),),
            name="labd-loopwatch",
            daemon=True,
        )
        previous, _active = _active, self
        watchdog.start()
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            _active = previous
            stop_beating()
            self._stop.set()
            watchdog.join()

    def _heartbeat(self) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        start = self._beat + HEARTBEAT_S
        if now - start > STALL_S:
            self._record(start, now, cpu - self._cpu)
        elif self._unlogged and now - self._logged_at >= LOG_EVERY_S:
            self._log(_summary(self._unlogged), now)
        self._beat, self._cpu = now, cpu

    def _record(self, start: float, end: float, cpu: float) -> None:
        beat, running = self._sample
        if beat != self._beat:  # sampled during an earlier, shorter hold-up
            running = ""
        # Nothing sampled (the watchdog did not run either) and the process used little
        # CPU meanwhile: no thread of the process ran; it was stopped or not scheduled.
        stopped = not running and cpu < (end - start) / 2
        stall = Stall(start + self._offset, end + self._offset, stopped, running)
        self.stalls.append(stall)
        if stopped or stall.seconds >= LOG_EVERY_S or end - self._logged_at >= LOG_EVERY_S:
            also = f" (also {_summary(self._unlogged)})" if self._unlogged else ""
            self._log(_describe(stall) + also, end)
        else:
            self._unlogged.append(stall)

    def _log(self, line: str, now: float) -> None:
        log.warning("%s", line)
        self._logged_at, self._unlogged = now, []

    def stalled_seconds(self, t0: float, t1: float) -> float:
        total = sum(_overlap(s.start, s.end, t0, t1) for s in self.stalls)
        pending_start = self._beat + HEARTBEAT_S
        now = time.perf_counter()
        if now - pending_start > STALL_S:  # over, but the heartbeat has not beaten since
            total += _overlap(pending_start + self._offset, now + self._offset, t0, t1)
        return total

    def _take_sample(self, beat: float, loop: asyncio.AbstractEventLoop) -> None:
        frames = sys._current_frames()
        try:
            frame = frames.get(self._loop_thread)
            if not _waiting(frame):
                self._sample = (beat, _frames(frame))
            del frame
        finally:
            # The loop may have left these frames meanwhile: freed here, off the loop
            # thread, a frame would free its locals, pycapnp objects among them.
            loop.call_soon_threadsafe(frames.clear)

    def _watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        expected = time.perf_counter() + WATCHDOG_S
        while not self._stop.wait(max(0.0, expected - time.perf_counter())):
            now, beat = time.perf_counter(), self._beat
            overdue = now - beat - HEARTBEAT_S
            # Woken late itself, the watchdog would only see the loop after the stall.
            on_time = now - expected < STALL_S / 2
            if on_time and overdue > STALL_S / 2 and self._sample[0] != beat:
                self._take_sample(beat, loop)
            # Next look: when this beat would be overdue, or soon again if it already is.
            expected = now + max(WATCHDOG_S, STALL_S / 2 - overdue)


def _describe(stall: Stall) -> str:
    if stall.process_stopped:
        return (
            f"daemon stalled {stall.seconds:.2f} s: the whole process was not running"
            " (SIGSTOP, a VM pause or an overloaded host); no instrument is blamed"
        )
    return f"loop stalled {stall.seconds:.2f} s in {stall.running or '(not sampled)'}"


def _summary(stalls: list[Stall]) -> str:
    longest = max(stalls, key=lambda s: s.seconds)
    total = sum(s.seconds for s in stalls)
    return f"shorter stalls: {len(stalls)}, {total:.2f} s in all; the longest {_describe(longest)}"


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _waiting(frame: types.FrameType | None) -> bool:
    """The loop thread waits for I/O or a timer (asyncio's selector): an overdue beat then
    means the process did not get the CPU, not that the loop was busy."""
    return (
        frame is not None
        and frame.f_code.co_name == "select"
        and frame.f_code.co_filename.endswith("selectors.py")
    )


def _frames(frame: types.FrameType | None) -> str:
    """``file:line function`` for the innermost frames, innermost first, and the innermost
    labd frame (the project's code that led there) when it is further out."""
    if frame is None:
        return ""
    stack = traceback.StackSummary.extract(traceback.walk_stack(frame), lookup_lines=False)
    stack.reverse()
    shown = [_where(f) for f in reversed(stack[-FRAMES_SHOWN:])]
    ours = next((f for f in reversed(stack) if _is_ours(f.filename)), None)
    if ours is not None and _where(ours) not in shown:
        shown.append(f"... {_where(ours)}")
    return " < ".join(shown)


def _is_ours(filename: str) -> bool:
    # labd's own code, not the glue every callback runs under (labd/aio.py).
    return "/labd/" in filename and not filename.endswith("/labd/aio.py")


def _where(frame: traceback.FrameSummary) -> str:
    parts = frame.filename.replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{frame.lineno} {frame.name}"


_active: LoopWatch | None = None
