"""Watch the event loop's health: notice every stall, say what caused it, remember it.

Everything the daemon does runs on one thread (Trio as a guest on pycapnp's asyncio loop,
docs/architecture.md), so any import, blocking call or long computation there freezes every
stream, call and timeout at once. Two observers catch that:

- a **heartbeat** task on the loop sleeps :data:`HEARTBEAT_S` at a time; each time it wakes
  late by more than :data:`STALL_S`, the loop did not tick for that long. The stall is
  recorded (for :func:`stalled_seconds`) and logged on ``labd.loop``, one line;
- a **watchdog** thread looks at the heartbeat while it is overdue and samples the loop
  thread's top frames (``sys._current_frames()``): that is the "what was running" of the log
  line. When the watchdog could not sample either and the process used little CPU during
  the gap, nothing in the process ran (SIGSTOP, a VM pause, an overloaded host): the stall
  is logged as the whole daemon's, not the loop's.

:func:`stalled_seconds` lets timeouts blame the right party: the supervisor subtracts the
daemon's own stall from a call's elapsed time before deciding that a driver is too slow.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass

import trio

log = logging.getLogger("labd.loop")

HEARTBEAT_S = 0.1
"""The heartbeat's sleep. Any lateness beyond it is a stall; so the period only decides how
soon a stall is seen, not how well it is measured."""

STALL_S = 0.1
"""A loop that did not tick for longer than this is logged and recorded as stalled."""

WATCHDOG_S = 0.05
"""How often the watchdog thread looks at the heartbeat (and so the resolution of the
frame sample and of a whole-process stop)."""

KEPT_STALLS = 1024
"""Stalls remembered for :func:`stalled_seconds`; older ones are forgotten (the supervisor
asks about the last call's few seconds, never further back)."""

FRAMES_SHOWN = 3
"""Innermost frames of the loop thread quoted in a stall's log line."""


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

    Includes a stall that has just ended but that the heartbeat has not yet woken up to
    record: called on the loop right after a SIGCONT, the answer already holds the stop.
    """
    watch = _active
    if watch is None or t1 <= t0:
        return 0.0
    return watch.stalled_seconds(t0, t1)


class LoopWatch:
    """The heartbeat (:meth:`run`, a Trio task) and its watchdog thread."""

    def __init__(self) -> None:
        self.stalls: deque[Stall] = deque(maxlen=KEPT_STALLS)
        self._offset = 0.0  # trio.current_time() - time.perf_counter()
        self._loop_thread = 0
        self._beat = 0.0  # the heartbeat's last wake-up (perf_counter), read by the watchdog
        self._sample: tuple[float, str] = (0.0, "")  # (the beat it is overdue from, frames)
        self._stop = threading.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the loop until cancelled (one watch per process: the latest one answers
        :func:`stalled_seconds`)."""
        global _active
        self._offset = trio.current_time() - time.perf_counter()
        self._loop_thread = threading.get_ident()
        self._beat = time.perf_counter()
        watchdog = threading.Thread(target=self._watchdog, name="labd-loopwatch", daemon=True)
        previous, _active = _active, self
        watchdog.start()
        try:
            task_status.started()
            await self._heartbeat()
        finally:
            _active = previous
            self._stop.set()
            watchdog.join()

    async def _heartbeat(self) -> None:
        cpu = time.process_time()
        while True:
            await trio.sleep(HEARTBEAT_S)
            now, now_cpu = time.perf_counter(), time.process_time()
            start = self._beat + HEARTBEAT_S
            if now - start > STALL_S:
                self._record(start, now, now_cpu - cpu)
            self._beat, cpu = now, now_cpu

    def _record(self, start: float, end: float, cpu: float) -> None:
        beat, running = self._sample
        if beat != self._beat:  # sampled during an earlier, shorter hold-up
            running = ""
        # Nothing sampled (the watchdog did not run either) and the process used little
        # CPU meanwhile: no thread of the process ran; it was stopped or not scheduled.
        stopped = not running and cpu < (end - start) / 2
        stall = Stall(start + self._offset, end + self._offset, stopped, running)
        self.stalls.append(stall)
        if stopped:
            log.warning(
                "daemon stalled %.2f s: the whole process was not running "
                "(SIGSTOP, a VM pause or an overloaded host); no instrument is blamed",
                stall.seconds,
            )
        else:
            log.warning("loop stalled %.2f s in %s", stall.seconds, running or "(not sampled)")

    def stalled_seconds(self, t0: float, t1: float) -> float:
        total = sum(_overlap(s.start, s.end, t0, t1) for s in self.stalls)
        pending_start = self._beat + HEARTBEAT_S
        now = time.perf_counter()
        if now - pending_start > STALL_S:  # over, but the heartbeat has not woken up yet
            total += _overlap(pending_start + self._offset, now + self._offset, t0, t1)
        return total

    def _watchdog(self) -> None:
        expected = time.perf_counter() + WATCHDOG_S
        while not self._stop.wait(max(0.0, expected - time.perf_counter())):
            now, beat = time.perf_counter(), self._beat
            # Woken late itself, the watchdog would only see the loop after the stall.
            on_time = now - expected < STALL_S / 2
            if on_time and now - beat - HEARTBEAT_S > STALL_S / 2 and self._sample[0] != beat:
                frame = sys._current_frames().get(self._loop_thread)
                self._sample = (beat, _describe(frame))
            expected = now + WATCHDOG_S


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _describe(frame: object) -> str:
    """``file:line function`` for the innermost frames, innermost first, and the innermost
    labd frame (the project's code that led there) when it is further out."""
    if frame is None:
        return ""
    stack = traceback.extract_stack(frame)  # type: ignore[arg-type]
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
