"""Time travel: pause the live view and scroll back through recent data.

Readings need nothing special: every plot keeps the last minutes (:class:`gui.traces.History`)
and simply draws a window that ends at the chosen moment. Frames are big, so they come
from where they already are: the daemon's shared-memory ring when the daemon runs on
this machine (zero-copy read, :mod:`labd.rings`), otherwise a bounded memory of the
frames this GUI displayed, reduced to display size.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import dearpygui.dearpygui as dpg
import numpy as np

from capabilities import Frame
from gui.imaging import decimate
from gui.panels import HISTORY_S, IMAGE_BOX, CameraView
from labd.records import frame_from_batch
from labd.rings.errors import RingError
from labd.rings.reader import RingReader, attach

if TYPE_CHECKING:
    from gui.app import GuiApp

log = logging.getLogger("labd.gui")

MEMORY_BUDGET_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Recalled:
    frame: Frame
    source: str


class FrameMemory:
    """The recent frames of one stream at display size, within a byte budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.frames: deque[Frame] = deque()
        self.bytes = 0

    def add(self, frame: Frame) -> None:
        small = np.ascontiguousarray(decimate(frame.data, IMAGE_BOX, IMAGE_BOX))
        self.frames.append(replace(frame, data=small))
        self.bytes += small.nbytes
        while self.bytes > self.budget and len(self.frames) > 1:
            self.bytes -= self.frames.popleft().data.nbytes

    def at(self, t: float) -> Frame | None:
        """The last frame taken at or before ``t``."""
        times = [f.timestamp for f in self.frames]
        i = bisect.bisect_right(times, t) - 1
        return self.frames[i] if i >= 0 else None


class TimeTravel:
    """The scrubber bar and the recall of past frames."""

    def __init__(self, app: GuiApp) -> None:
        self.app = app
        self.anchor = 0.0
        self.shown_at: float | None = None
        self.memories: dict[str, FrameMemory] = {}
        self.rings: dict[str, RingReader | None] = {}
        self.last_source = ""

    def build(self) -> None:
        with dpg.group(horizontal=True):
            dpg.add_checkbox(label="pause", tag="timetravel.paused", callback=self.toggle)
            dpg.add_slider_float(
                label="seconds ago",
                tag="timetravel.ago",
                min_value=0.0,
                max_value=HISTORY_S,
                width=500,
                callback=self.scrub,
            )
            dpg.add_button(label="Back to live", tag="timetravel.live", callback=self.live)
            dpg.add_text("LIVE", tag="timetravel.text", color=(90, 200, 90))

    # --- the controls' callbacks
    def toggle(self) -> None:
        if dpg.get_value("timetravel.paused"):
            self.pause()
        else:
            self.live()

    def pause(self) -> None:
        self.anchor = time.time()
        dpg.set_value("timetravel.paused", True)
        self.scrub()

    def scrub(self) -> None:
        if self.app.clock.paused_at is None and not dpg.get_value("timetravel.paused"):
            self.anchor = time.time()
            dpg.set_value("timetravel.paused", True)
        self.app.clock.paused_at = self.anchor - float(dpg.get_value("timetravel.ago"))

    def live(self) -> None:
        self.app.clock.paused_at = None
        self.shown_at = None
        dpg.set_value("timetravel.paused", False)
        dpg.set_value("timetravel.ago", 0.0)
        dpg.set_value("timetravel.text", "LIVE")
        dpg.configure_item("timetravel.text", color=(90, 200, 90))

    # --- per frame
    def remember_frame(self, stream: str, frame: Frame) -> None:
        memory = self.memories.setdefault(stream, FrameMemory(MEMORY_BUDGET_BYTES // 4))
        memory.add(frame)

    def tick(self) -> None:
        t = self.app.clock.paused_at
        if t is None or t == self.shown_at:
            return
        self.shown_at = t
        sources = set()
        for view in self.app.views():
            if isinstance(view, CameraView) and view.section.stream is not None:
                recalled = self.recall(view.section.stream, t)
                if recalled is not None:
                    view.show_frame(recalled.frame)
                    sources.add(recalled.source)
        stamp = time.strftime("%H:%M:%S", time.localtime(t))
        where = f" | frames from {', '.join(sorted(sources))}" if sources else ""
        dpg.set_value("timetravel.text", f"PAUSED at {stamp}{where}")
        dpg.configure_item("timetravel.text", color=(230, 150, 60))

    def recall(self, stream: str, t: float) -> Recalled | None:
        """The frame of ``stream`` shown at time ``t``: from the ring if local, else memory."""
        reader = self._ring(stream)
        if reader is not None:
            try:
                batches = reader.between(t - 5.0, t)
                before = [b for b in batches if b.first_ts <= t]
                if before:
                    return Recalled(frame_from_batch(before[-1].copy()), "the local ring")
            except RingError as exc:
                log.info("ring read of %s failed (%s); using the GUI's memory", stream, exc)
        memory = self.memories.get(stream)
        frame = memory.at(t) if memory is not None else None
        return None if frame is None else Recalled(frame, "this GUI's memory")

    def _ring(self, stream: str) -> RingReader | None:
        if not self.app.link.local:
            return None
        if stream not in self.rings:
            try:
                self.rings[stream] = attach(stream)
            except (RingError, OSError):
                self.rings[stream] = None
        return self.rings[stream]
