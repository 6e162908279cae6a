"""Time travel: pause the live view and scroll back through the last minutes of every stream.

When paused at time ``t`` every camera shows the frame the daemon recorded last before
``t`` and every plot the readings of the minute before it -- the daemon's data, not what
this GUI happened to receive, so the scrubber reaches back before the GUI was started.
Where it comes from:

- the daemon's shared-memory rings, mapped read-only, when the daemon runs on this
  machine (``Lab.dataInfo`` says where they are): no copy over a socket at all;
- the daemon's replay (``Lab.replay``: ring and files) otherwise, or with
  ``labd gui --no-local-rings``.

Neither ever runs on the render thread: ring reads happen on a worker thread, replays on
the network thread, and their results come back through :meth:`LabModel.call_in_ui`.
Scrubbing is latest-wins: while one recall is under way only the newest position waits,
the ones in between are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import dearpygui.dearpygui as dpg
import numpy as np
import pyarrow as pa

from capabilities import Frame
from gui.model import Connection, LabModel
from gui.network import NetworkThread
from gui.panels import HISTORY_S, CameraView, Clock, ReadingView, SectionView
from gui.traces import History
from labd.client import Lab
from labd.client.replay import DataInfo
from labd.records import frame_from_batch
from labd.rings.errors import RingError
from labd.rings.reader import RingReader, attach


class Host(Protocol):
    """What time travel needs of the GUI around it (:class:`gui.app.GuiApp` is one); a
    protocol, so that this module does not import the app that imports it."""

    link: NetworkThread
    model: LabModel
    clock: Clock

    def views(self) -> list[SectionView]: ...


log = logging.getLogger("labd.gui")

FRAME_LOOKBACK_S = (0.5, 5.0, 60.0)
"""How far before ``t`` to look for the last frame, narrowest first: a replay moves every
frame of its window, so a wide window is asked for only when a narrow one was empty."""


@dataclass(frozen=True)
class Query:
    t: float
    frame_streams: tuple[str, ...]
    reading_streams: tuple[str, ...]
    span_s: float


@dataclass
class Recall:
    """What the daemon had recorded at ``query.t``."""

    query: Query
    source: str
    frames: dict[str, Frame] = field(default_factory=dict)
    readings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _readings(batches: Sequence[pa.RecordBatch], t: float) -> tuple[np.ndarray, np.ndarray]:
    if not batches:
        return np.empty(0), np.empty(0)
    table = pa.Table.from_batches(batches)
    ts = table.column("timestamp").to_numpy()
    values = table.column("value").to_numpy()
    keep = ts <= t
    return ts[keep], values[keep]


def _last_frame(batches: Sequence[pa.RecordBatch], t: float) -> Frame | None:
    for batch in reversed(batches):
        if batch.num_rows and batch.column("timestamp")[0].as_py() <= t:
            return frame_from_batch(batch)
    return None


class LocalRings:
    """Recall from the daemon's rings on this machine, on a worker thread of its own."""

    source = "the local ring"

    def __init__(self, daemon_id: str, root: Path | None) -> None:
        self.daemon_id = daemon_id
        self.root = root
        self._readers: dict[str, RingReader] = {}
        self._job: tuple[Query, Callable[[Recall], None]] | None = None
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="labd-gui-rings", daemon=True)
        self._thread.start()

    def submit(self, query: Query, done: Callable[[Recall], None]) -> None:
        """Recall ``query``; a query still waiting is replaced (latest wins)."""
        with self._wake:
            self._job = (query, done)
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._job is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    break
                assert self._job is not None
                (query, done), self._job = self._job, None
            try:
                done(self.recall(query))
            except Exception:  # a ring the daemon removed meanwhile, say: next query retries
                log.exception("recalling t=%s from the rings failed", query.t)
        for reader in self._readers.values():
            reader.close()

    def recall(self, query: Query) -> Recall:
        result = Recall(query, self.source)
        t = query.t
        for stream in query.frame_streams:
            ring = self._reader(stream)
            for lookback in FRAME_LOOKBACK_S:
                batches = [b for b in ring.between(t - lookback, t) if b.first_ts <= t]
                if batches:
                    result.frames[stream] = frame_from_batch(batches[-1].copy())
                    break
        for stream in query.reading_streams:
            batches = [b.copy() for b in self._reader(stream).between(t - query.span_s, t)]
            result.readings[stream] = _readings(batches, t)
        return result

    def _reader(self, stream: str) -> RingReader:
        reader = self._readers.get(stream)
        if reader is None or (reader.closed or not reader.writer_alive):
            if reader is not None:  # the daemon restarted: map its new ring
                reader.close()
            reader = self._readers[stream] = attach(stream, daemon=self.daemon_id, root=self.root)
        return reader


class RemoteReplay:
    """Recall through ``Lab.replay`` on the GUI's network thread."""

    source = "the daemon's replay"

    def __init__(self, app: Host) -> None:
        self.app = app
        self._busy = False
        self._waiting: tuple[Query, Callable[[Recall], None]] | None = None

    def submit(self, query: Query, done: Callable[[Recall], None]) -> None:
        if self._busy:
            self._waiting = (query, done)  # latest wins
            return
        self._busy = True

        def finished(result: Recall | BaseException) -> None:
            self._busy = False
            if isinstance(result, Recall):
                done(result)
            else:
                log.warning("replay for time travel failed: %s", result)
            if self._waiting is not None:
                (query, then), self._waiting = self._waiting, None
                self.submit(query, then)

        self.app.link.submit(lambda lab: self.recall(lab, query), finished, finished)

    def close(self) -> None:
        self._waiting = None

    async def recall(self, lab: Lab, query: Query) -> Recall:
        result = Recall(query, self.source)
        t = query.t
        for stream in query.frame_streams:
            for lookback in FRAME_LOOKBACK_S:
                last: pa.RecordBatch | None = None
                async with lab.replay_batches(stream, t - lookback, t) as batches:
                    async for _, batch in batches:  # keep one frame, not the whole window
                        if batch.column("timestamp")[0].as_py() <= t:
                            last = batch
                if last is not None:
                    result.frames[stream] = frame_from_batch(last)
                    break
        for stream in query.reading_streams:
            table = await lab.replay(stream, t - query.span_s, t)
            result.readings[stream] = _readings(table.to_batches(), t)
        return result


class TimeTravel:
    """The scrubber bar, and the recall of the past into the camera views and plots."""

    def __init__(self, app: Host, *, local_rings: bool = True) -> None:
        self.app = app
        self.local_rings = local_rings
        self.anchor = 0.0
        self.asked_at: float | None = None
        self.source: LocalRings | RemoteReplay | None = None
        self.shown: Recall | None = None

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
            dpg.add_text("", tag="timetravel.at", show=False)  # the exact time, for tests

    # --- where the past comes from
    def on_connection(self, connection: Connection) -> None:
        """Pick the source once connected: the local rings if they can be mapped."""
        if connection.status != "connected":
            return
        if not (self.local_rings and connection.local):
            self._use(RemoteReplay(self.app))
            return
        self.app.link.submit(lambda lab: lab.data_info(), self._got_data_info, self._no_info)

    def _got_data_info(self, info: DataInfo) -> None:
        if not (info.same_host and info.ring_root is not None and info.rings):
            self._use(RemoteReplay(self.app))
            return
        try:  # only a check that they can be mapped; the worker opens its own
            attach(info.rings[0].stream, daemon=info.daemon_id, root=info.ring_root).close()
        except (RingError, OSError) as exc:
            log.info("cannot map the daemon's rings (%s): time travel uses its replay", exc)
            self._use(RemoteReplay(self.app))
            return
        self._use(LocalRings(info.daemon_id, info.ring_root))

    def _no_info(self, exc: BaseException) -> None:
        log.info("no data info from the daemon (%s): time travel uses its replay", exc)
        self._use(RemoteReplay(self.app))

    def _use(self, source: LocalRings | RemoteReplay) -> None:
        if self.source is not None:
            self.source.close()
        self.source = source
        self.asked_at = None  # ask again from the new source

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

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
        self.asked_at = None
        self.shown = None
        for view in self.app.views():
            if isinstance(view, ReadingView):
                view.plot.show_past(None)
        dpg.set_value("timetravel.paused", False)
        dpg.set_value("timetravel.ago", 0.0)
        dpg.set_value("timetravel.text", "LIVE")
        dpg.set_value("timetravel.at", "")
        dpg.configure_item("timetravel.text", color=(90, 200, 90))

    # --- per UI frame: ask for a new moment, never wait for it
    def tick(self) -> None:
        t = self.app.clock.paused_at
        if t is None or t == self.asked_at or self.source is None:
            return
        self.asked_at = t
        views = self.app.views()
        query = Query(
            t,
            tuple(
                {v.section.stream for v in views if isinstance(v, CameraView) and v.section.stream}
            ),
            tuple(
                {v.section.stream for v in views if isinstance(v, ReadingView) and v.section.stream}
            ),
            self.app.clock.span_s,
        )
        stamp = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"
        dpg.set_value("timetravel.text", f"PAUSED at {stamp} | recalling...")
        dpg.configure_item("timetravel.text", color=(230, 150, 60))
        model = self.app.model
        self.source.submit(query, lambda recall: model.call_in_ui(lambda: self.show(recall)))

    def show(self, recall: Recall) -> None:
        """Put a recalled moment on screen (UI thread)."""
        t = recall.query.t
        if self.app.clock.paused_at != t:
            return  # scrubbed on, or back to live, meanwhile
        self.shown = recall
        for view in self.app.views():
            stream = view.section.stream
            if isinstance(view, CameraView) and stream in recall.frames:
                view.show_frame(recall.frames[stream])
            elif isinstance(view, ReadingView) and stream in recall.readings:
                ts, values = recall.readings[stream]
                past = History(max(recall.query.span_s, 1.0), capacity=len(ts) + 1)
                past.append(ts, values)
                view.plot.show_past(past)
        stamp = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"
        missing = [s for s in recall.query.frame_streams if s not in recall.frames]
        note = f" | no frame of {', '.join(sorted(missing))} then" if missing else ""
        dpg.set_value("timetravel.text", f"PAUSED at {stamp} | from {recall.source}{note}")
        dpg.set_value("timetravel.at", repr(t))
