"""The main window and its render loop.

The loop does, once per displayed frame: take what the network thread delivered
(:meth:`gui.model.LabModel.take`), hand it to the panels, let each panel redraw what
changed, and render. Nothing in it waits on the network, so a slow or vanished daemon
never freezes the window; the status line says where the connection stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import dearpygui.dearpygui as dpg

from gui.model import Connection, InstrumentInfo, LabModel, Update
from gui.network import NetworkThread
from gui.panels import Clock, InstrumentPanel, SectionView
from gui.scripts_panel import ScriptsPanel
from gui.timetravel import TimeTravel

log = logging.getLogger("labd.gui")

VIEWPORT = (1600, 1000)
CONNECTION_COLOURS = {
    "connected": (90, 200, 90),
    "connecting": (220, 200, 80),
    "disconnected": (240, 70, 70),
}
POLL_INTERVAL_S = 0.5


class GuiApp:
    """The window: status line, time-travel bar, instrument panels."""

    def __init__(
        self, link: NetworkThread, model: LabModel, title: str = "labd", *, local_rings: bool = True
    ) -> None:
        self.link = link
        self.model = model
        self.title = title
        self.local_rings = local_rings
        """Time travel may map the daemon's rings when it runs on this machine."""
        self.clock = Clock()
        self.panels: dict[str, InstrumentPanel] = {}
        self.connection: Connection | None = None
        self.frame_hooks: list[Callable[[GuiApp], None]] = []
        self._last_poll = 0.0
        self.ui_frames = 0
        self.hold_frames = False
        """While True, live frames are dropped: a screenshot in flight sees a steady image."""

    # ------------------------------------------------------------ building

    def build(self) -> None:
        dpg.create_context()
        self.texture_registry = dpg.add_texture_registry()
        with dpg.window(tag="main"):
            with dpg.group(horizontal=True):
                dpg.add_text("labd", color=(150, 180, 255))
                dpg.add_text("starting", tag="connection")
            self.timetravel = TimeTravel(self, local_rings=self.local_rings)
            self.timetravel.build()
            dpg.add_separator()
            with dpg.group(horizontal=True):
                # Cameras on the left with the scripts below them; the other instruments
                # on the right, so the instrument panels start on the first screen.
                with dpg.child_window(width=840, border=False):
                    dpg.add_group(tag="left")
                    dpg.add_group(tag="left_tools")
                dpg.add_child_window(tag="right", border=False)
        self.scripts = ScriptsPanel(self.link, "left_tools")
        dpg.create_viewport(title=self.title, width=VIEWPORT[0], height=VIEWPORT[1])
        dpg.setup_dearpygui()
        dpg.show_viewport()
        dpg.set_primary_window("main", True)

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        while dpg.is_dearpygui_running():
            self.step()
            dpg.render_dearpygui_frame()

    def step(self) -> None:
        """One frame of UI work: apply what arrived, let panels redraw, run hooks."""
        self.apply(self.model.take())
        for view in self.views():
            view.tick(self.clock)
        now = time.monotonic()
        if now - self._last_poll >= POLL_INTERVAL_S and self.connected:
            self._last_poll = now
            for view in self.views():
                view.poll()
        self.timetravel.tick()
        self.scripts.tick()
        for hook in list(self.frame_hooks):
            hook(self)
        self.ui_frames += 1

    def apply(self, update: Update) -> None:
        if update.connection is not None:
            self.set_connection(update.connection)
        if update.instruments is not None:
            self.set_instruments(update.instruments)
        for info in update.states.values():
            panel = self.panels.get(info.name)
            if panel is not None:
                panel.set_state(info)
        for stream, frame in update.frames.items():
            if self.clock.paused_at is None and not self.hold_frames:
                for view in self.views_of(stream):
                    view.on_frame(stream, frame)
        for stream, chunks in update.readings.items():
            for t, v in chunks:
                for view in self.views_of(stream):
                    view.on_readings(stream, t, v)
        for callback in update.callbacks:
            try:
                callback()
            except Exception:  # a result arriving for a deleted panel, say
                log.exception("a command result could not be shown")

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.status == "connected"

    def set_connection(self, connection: Connection) -> None:
        self.connection = connection
        text = f"{connection.status} | {connection.address}"
        if connection.detail:
            text += f" | {connection.detail}"
        dpg.set_value("connection", text)
        dpg.configure_item("connection", color=CONNECTION_COLOURS.get(connection.status))
        self.timetravel.on_connection(connection)
        if connection.status != "connected":
            for panel in self.panels.values():
                panel.set_state(_unknown(panel.info, connection))

    def set_instruments(self, infos: dict[str, InstrumentInfo]) -> None:
        """Build panels for a new instrument list; keep panels (and plots) that still fit."""
        for name in list(self.panels):
            info = infos.get(name)
            if info is None or info.capabilities != self.panels[name].info.capabilities:
                self.panels.pop(name).delete()
        for name, info in infos.items():
            if name in self.panels:
                self.panels[name].set_state(info)
                continue
            column = "left" if "FrameProducer" in info.capabilities else "right"
            self.panels[name] = InstrumentPanel(info, self.link, column, self.texture_registry)

    def views(self) -> list[SectionView]:
        return [view for panel in self.panels.values() for view in panel.views]

    def views_of(self, stream: str) -> list[SectionView]:
        return [view for view in self.views() if view.section.stream == stream]


def _unknown(info: InstrumentInfo, connection: Connection) -> InstrumentInfo:
    """What a panel shows while the daemon is unreachable: its state is not known."""
    return InstrumentInfo(
        info.name,
        info.driver,
        info.capabilities,
        "stopped",
        f"daemon {connection.status}",
        info.restarts,
        info.streams,
    )
