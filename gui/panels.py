"""Instrument panels drawn with DearPyGui, one section per :class:`gui.controls.Section`.

Widgets get stable tags (``"<instrument>.<section>.<control>"``, e.g. ``stage.motion.go``)
so that the test hook (:mod:`gui.actions`) can set values and press buttons through the
very callbacks a user triggers. Every command goes out through :class:`gui.network.NetworkThread`
and its result comes back on the UI thread; a refused command shows its error message
on the panel, it never raises into the render loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import dearpygui.dearpygui as dpg
import numpy as np

from capabilities import Frame, Parameter, ParameterValue, Reading, Roi, SupplyReadback
from capabilities.parameters import find
from gui import colormaps, settings
from gui.controls import Section, sections_for, unknown_capabilities
from gui.imaging import Rendered, render
from gui.model import InstrumentInfo
from gui.network import NetworkThread
from gui.textures import DoubleBufferedTexture
from gui.traces import History, minmax_per_column
from labd.client import Lab, Parameters

STATE_COLOURS = {
    "ready": (90, 200, 90),
    "busy": (220, 200, 80),
    "starting": (150, 150, 220),
    "restarting": (230, 150, 60),
    "faulted": (240, 70, 70),
    "stopped": (160, 160, 160),
}
PLOT_WIDTH = 460
PLOT_HEIGHT = 150
IMAGE_BOX = 512
HISTORY_S = 300.0
GREY = (150, 150, 150)
TITLE_COLOUR = (150, 180, 255)
ERROR_COLOUR = (240, 120, 120)


class Clock:
    """Where the views look: live (``paused_at is None``) or a moment in the past."""

    def __init__(self) -> None:
        self.paused_at: float | None = None
        self.span_s = 60.0

    def end(self) -> float:
        return time.time() if self.paused_at is None else self.paused_at


class SectionView:
    """Base of a panel section; subclasses draw one kind and react to data."""

    TITLED: ClassVar[bool] = True
    """The panel writes the section's title above it (False: the view places its own)."""

    def __init__(self, panel: InstrumentPanel, section: Section) -> None:
        self.panel = panel
        self.section = section
        self.tag = f"{panel.name}.{section.kind}"

    @property
    def visible(self) -> bool:
        """Whether its controls are on the panel now (a closed settings section is not)."""
        return True

    def header(self) -> None:
        """Widgets on the panel's state line (built before :meth:`build`)."""

    @property
    def link(self) -> NetworkThread:
        return self.panel.link

    def build(self) -> None:
        raise NotImplementedError

    def on_readings(self, stream: str, t: np.ndarray, v: np.ndarray) -> None:
        """Readings of a stream this section shows arrived."""

    def on_frame(self, stream: str, frame: Frame) -> None:
        """A frame of a stream this section shows arrived."""

    def tick(self, clock: Clock) -> None:
        """Once per UI frame: redraw what changed (cheaply)."""

    def poll(self) -> None:
        """About twice a second: ask the daemon for values no stream carries."""

    def close(self) -> None:
        """The panel is being deleted: stop what runs for this section."""

    def call(
        self, capability: str, method: str, *args: Any, done: Callable[[Any], None] | None = None
    ) -> None:
        dpg.hide_item(f"{self.panel.name}.error")
        self.link.call(
            self.panel.name, capability, method, *args, done=done, failed=self.panel.show_error
        )


class ReadingPlot:
    """A scrolling plot of one reading stream, decimated to min/max per pixel column."""

    def __init__(self, tag: str, label: str) -> None:
        self.tag = tag
        self.label = label
        self.history = History(HISTORY_S)
        self.past: History | None = None
        """While time travelling: the recorded readings before the chosen moment."""
        self._drawn_at = 0.0
        self._dirty = True

    def build(self) -> None:
        with dpg.plot(tag=f"{self.tag}.plot", height=PLOT_HEIGHT, width=PLOT_WIDTH, no_title=True):
            dpg.add_plot_axis(dpg.mvXAxis, tag=f"{self.tag}.x", label="seconds")
            with dpg.plot_axis(dpg.mvYAxis, tag=f"{self.tag}.y", label=self.label):
                dpg.add_line_series([], [], tag=f"{self.tag}.series")

    def append(self, t: np.ndarray, v: np.ndarray) -> None:
        self.history.append(t, v)
        self._dirty = True

    def show_past(self, past: History | None) -> None:
        """Draw ``past`` instead of the live history (None: live again)."""
        self.past = past
        self._dirty = True

    @property
    def source(self) -> History:
        return self.history if self.past is None else self.past

    def draw(self, clock: Clock) -> None:
        now = time.monotonic()
        # Scrolling needs a redraw even without new data, but 10 Hz is smooth enough.
        if not self._dirty and now - self._drawn_at < 0.1:
            return
        self._drawn_at, self._dirty = now, False
        end = clock.end()
        t, v = self.source.window(end - clock.span_s, end)
        t, v = minmax_per_column(t - end, v, PLOT_WIDTH)
        dpg.set_value(f"{self.tag}.series", [t.tolist(), v.tolist()])
        dpg.set_axis_limits(f"{self.tag}.x", -clock.span_s, 0.0)
        if len(v):
            lo, hi = float(v.min()), float(v.max())
            pad = (hi - lo) * 0.1 or abs(hi) * 0.01 or 1.0
            dpg.set_axis_limits(f"{self.tag}.y", lo - pad, hi + pad)

    @property
    def points(self) -> int:
        return len(dpg.get_value(f"{self.tag}.series")[0])


class ReadingView(SectionView):
    """``Readable`` / ``TemperatureSensor``: the live value and its scrolling plot."""

    METHODS: ClassVar[dict[str, tuple[str, str]]] = {
        "reading": ("Readable", "read"),
        "temperature": ("TemperatureSensor", "temperature"),
    }

    def build(self) -> None:
        dpg.add_text("-", tag=f"{self.tag}.value")
        self.plot = ReadingPlot(self.tag, self.section.title)
        self.plot.build()
        self.unit = ""

    def on_readings(self, stream: str, t: np.ndarray, v: np.ndarray) -> None:
        self.plot.append(t, v)

    def tick(self, clock: Clock) -> None:
        self.plot.draw(clock)
        end = clock.end()
        _, v = self.plot.source.window(end - clock.span_s, end)
        if len(v):
            dpg.set_value(f"{self.tag}.value", f"{v[-1]:.6g} {self.unit}")

    def poll(self) -> None:
        # The unit is not part of the plotted arrays; ask once. Without a stream, poll values.
        if not self.unit or self.section.stream not in self.panel.info.streams:
            capability, method = self.METHODS[self.section.kind]
            self.call(capability, method, done=self._got)

    def _got(self, reading: Reading) -> None:
        self.unit = reading.unit
        if self.section.stream not in self.panel.info.streams:
            self.plot.append(np.array([reading.timestamp]), np.array([reading.value]))


class MotionView(ReadingView):
    """``Movable`` (+ ``Stoppable``): position, target, jog and stop."""

    METHODS: ClassVar[dict[str, tuple[str, str]]] = {"motion": ("Movable", "position")}

    def build(self) -> None:
        tag = self.tag
        dpg.add_text("-", tag=f"{tag}.value")
        with dpg.group(horizontal=True):
            dpg.add_input_float(tag=f"{tag}.target", label="target", width=120, step=0)
            dpg.add_button(label="Move", tag=f"{tag}.go", callback=self.go)
        with dpg.group(horizontal=True):
            dpg.add_input_float(
                tag=f"{tag}.step", label="step", width=120, default_value=0.5, step=0
            )
            dpg.add_button(label=" - ", tag=f"{tag}.jog_minus", callback=lambda: self.jog(-1))
            dpg.add_button(label=" + ", tag=f"{tag}.jog_plus", callback=lambda: self.jog(+1))
            if "stop" in self.section.controls:
                dpg.add_button(label="STOP", tag=f"{tag}.stop", callback=self.stop)
        self.plot = ReadingPlot(tag, "position")
        self.plot.build()
        self.unit = ""

    def go(self) -> None:
        self.call("Movable", "move_abs", float(dpg.get_value(f"{self.tag}.target")))

    def jog(self, direction: int) -> None:
        self.call("Movable", "move_rel", direction * float(dpg.get_value(f"{self.tag}.step")))

    def stop(self) -> None:
        self.call("Stoppable", "stop")


class StopView(SectionView):
    def build(self) -> None:
        dpg.add_button(
            label="STOP", tag=f"{self.tag}.stop", callback=lambda: self.call("Stoppable", "stop")
        )


class SupplyView(SectionView):
    """``VoltageSource`` (+ ``Switchable``): set point, limit, readback, output switch."""

    def build(self) -> None:
        tag = self.tag
        with dpg.group(horizontal=True):
            dpg.add_input_float(tag=f"{tag}.setpoint", label="V", width=120, step=0)
            dpg.add_button(label="Set", tag=f"{tag}.set_voltage", callback=self.set_voltage)
            dpg.add_input_float(tag=f"{tag}.limit", label="A limit", width=120, step=0)
            dpg.add_button(label="Set", tag=f"{tag}.set_limit", callback=self.set_limit)
        dpg.add_text("readback: -", tag=f"{tag}.readback")
        if "output" in self.section.controls:
            dpg.add_checkbox(label="output on", tag=f"{tag}.output", callback=self.set_output)
        self._synced = False

    def set_voltage(self) -> None:
        self.call("VoltageSource", "set_voltage", float(dpg.get_value(f"{self.tag}.setpoint")))

    def set_limit(self) -> None:
        self.call("VoltageSource", "set_current_limit", float(dpg.get_value(f"{self.tag}.limit")))

    def set_output(self) -> None:
        self.call("Switchable", "set_on", bool(dpg.get_value(f"{self.tag}.output")))

    def poll(self) -> None:
        self.call("VoltageSource", "readback", done=self._readback)
        if not self._synced:  # fill the inputs with the daemon's values once
            self.call(
                "VoltageSource",
                "voltage_setpoint",
                done=lambda v: dpg.set_value(f"{self.tag}.setpoint", v),
            )
            self.call(
                "VoltageSource",
                "current_limit",
                done=lambda a: dpg.set_value(f"{self.tag}.limit", a),
            )
            if "output" in self.section.controls:
                self.call(
                    "Switchable", "is_on", done=lambda on: dpg.set_value(f"{self.tag}.output", on)
                )
            self._synced = True

    def _readback(self, rb: SupplyReadback) -> None:
        cc = "  CURRENT LIMITED" if rb.in_compliance else ""
        dpg.set_value(f"{self.tag}.readback", f"readback: {rb.voltage}, {rb.current}{cc}")


class SwitchView(SectionView):
    def build(self) -> None:
        dpg.add_checkbox(label="on", tag=f"{self.tag}.output", callback=self.set_output)

    def set_output(self) -> None:
        self.call("Switchable", "set_on", bool(dpg.get_value(f"{self.tag}.output")))

    def poll(self) -> None:
        self.call("Switchable", "is_on", done=lambda on: dpg.set_value(f"{self.tag}.output", on))


class CoolerView(SectionView):
    """``Cooled``: target temperature and the sensor's temperature and state."""

    def build(self) -> None:
        tag = self.tag
        with dpg.group(horizontal=True):
            dpg.add_input_float(tag=f"{tag}.setpoint", label="target °C", width=120, step=0)
            dpg.add_button(label="Set", tag=f"{tag}.set", callback=self.set_target)
        dpg.add_text("sensor: -", tag=f"{tag}.value")
        self._synced = False

    def set_target(self) -> None:
        self.call("Cooled", "set_cooling_target", float(dpg.get_value(f"{self.tag}.setpoint")))

    def poll(self) -> None:
        self.call("Cooled", "sensor_temperature", done=self._temperature)
        if not self._synced:
            self.call(
                "Cooled", "cooling_target", done=lambda c: dpg.set_value(f"{self.tag}.setpoint", c)
            )
            self._synced = True

    def _temperature(self, reading: Reading) -> None:
        self.call(
            "Cooled",
            "cooler_state",
            done=lambda s: dpg.set_value(f"{self.tag}.value", f"sensor: {reading}  ({s.value})"),
        )


class WavelengthView(SectionView):
    """``WavelengthTunable``: the wavelength held (nm) and a new one to set."""

    TITLED = False  # one line, title included: panels stay short (docs/gui.md)

    def build(self) -> None:
        tag = self.tag
        with dpg.group(horizontal=True):
            dpg.add_text(self.section.title, color=TITLE_COLOUR, tag=f"{tag}.title")
            dpg.add_input_float(tag=f"{tag}.target", label="nm", width=120, step=0)
            dpg.add_button(label="Set", tag=f"{tag}.set", callback=self.set_wavelength)
            dpg.add_text("wavelength: -", tag=f"{tag}.value")
        self._synced = False

    def set_wavelength(self) -> None:
        self.call(
            "WavelengthTunable",
            "set_wavelength",
            float(dpg.get_value(f"{self.tag}.target")),
            done=self._was_set,
        )

    def _was_set(self, _: object) -> None:
        self.poll()
        self.panel.reread_settings()

    def poll(self) -> None:
        self.call("WavelengthTunable", "wavelength", done=self._got)

    def _got(self, nm: float) -> None:
        dpg.set_value(f"{self.tag}.value", f"wavelength: {nm:.6g} nm")
        if not self._synced:  # fill the input with the daemon's value once
            dpg.set_value(f"{self.tag}.target", nm)
            self._synced = True


class LoopView(SectionView):
    """``TemperatureController``: set point (K), ramp rate (K/min, 0: jump), heater output."""

    def build(self) -> None:
        tag = self.tag
        with dpg.group(horizontal=True):
            dpg.add_input_float(tag=f"{tag}.setpoint", label="K", width=120, step=0)
            dpg.add_button(label="Set", tag=f"{tag}.set_setpoint", callback=self.set_setpoint)
            dpg.add_input_float(tag=f"{tag}.ramp", label="K/min", width=120, step=0)
            dpg.add_button(label="Set", tag=f"{tag}.set_ramp", callback=self.set_ramp)
        dpg.add_text("set point: -", tag=f"{tag}.value")
        self.shown: dict[str, str] = {}
        self._synced = False

    def set_setpoint(self) -> None:
        kelvin = float(dpg.get_value(f"{self.tag}.setpoint"))
        self.call(
            "TemperatureController",
            "set_temperature_setpoint",
            kelvin,
            done=lambda _: self.panel.reread_settings(),
        )

    def set_ramp(self) -> None:
        rate = float(dpg.get_value(f"{self.tag}.ramp"))
        self.call(
            "TemperatureController",
            "set_ramp_rate",
            rate,
            done=lambda _: self.panel.reread_settings(),
        )

    def poll(self) -> None:
        sync = not self._synced
        self._synced = True
        self.call(
            "TemperatureController",
            "temperature_setpoint",
            done=lambda k: self._got("set point", f"{k:.6g} K", f"{self.tag}.setpoint", k, sync),
        )
        self.call(
            "TemperatureController",
            "ramp_rate",
            done=lambda r: self._got("ramp", f"{r:.6g} K/min", f"{self.tag}.ramp", r, sync),
        )
        self.call(
            "TemperatureController",
            "heater_output",
            done=lambda h: self._got("heater", str(h), None, None, False),
        )

    def _got(self, what: str, text: str, field: str | None, value: Any, sync: bool) -> None:
        self.shown[what] = text
        order = ("set point", "ramp", "heater")
        dpg.set_value(
            f"{self.tag}.value",
            "   ".join(f"{k}: {self.shown[k]}" for k in order if k in self.shown),
        )
        if sync and field is not None:  # fill the inputs with the daemon's values once
            dpg.set_value(field, value)


class SettingsView(SectionView):
    """``Configurable``: one row per parameter, generated from the daemon's list.

    A long-running operation on the network thread watches the instrument's parameter
    changes and then lists and reads every parameter (the same order as the state watch
    in :mod:`gui.network`, so no change falls between reading and watching); every change,
    whoever made it (CLI, a script, another client), comes back to the row as it happens.
    The watch ends with the connection and is started again at the next poll. Row tags are
    ``<instrument>.settings.<parameter>`` (the widget), ``...<parameter>.set`` (its Set
    button, numbers and text), ``...<parameter>.error`` (the refusal), docs/gui.md.
    """

    RETRY_S = 5.0
    """After a failed watch (the instrument faulted, say), wait this long to ask again."""

    TITLED = False

    def header(self) -> None:
        # Closed by default: the first screen shows every instrument's live controls; the
        # rows open under the panel's other sections (docs/gui.md, "What you see").
        dpg.add_checkbox(label="settings", tag=f"{self.tag}.open", callback=self.toggle)

    def build(self) -> None:
        self.parameters: list[Parameter] = []
        self.held: dict[str, ParameterValue] = {}
        self.changes_seen = 0
        self.closed = False
        self._following = False
        self._retry_at = 0.0
        self._state = self.panel.info.state
        with dpg.group(tag=f"{self.tag}.body", show=False):
            dpg.add_text(self.section.title, color=TITLE_COLOUR, tag=f"{self.tag}.title")
            dpg.add_text("asking for the parameters...", tag=f"{self.tag}.status", color=GREY)
            dpg.add_group(tag=f"{self.tag}.rows")
            dpg.add_text("", tag=f"{self.tag}.changed", color=GREY)

    @property
    def visible(self) -> bool:
        return bool(dpg.get_value(f"{self.tag}.open")) and bool(self.parameters)

    def toggle(self) -> None:
        """The state line's *settings* box: show or hide the rows."""
        dpg.configure_item(f"{self.tag}.body", show=bool(dpg.get_value(f"{self.tag}.open")))

    def close(self) -> None:
        self.closed = True

    def poll(self) -> None:
        state = self.panel.info.state
        if self._state in _NOT_RUNNING and state in ("ready", "busy") and self.parameters:
            self.read_all()  # reopened: its settings may have been applied again
        self._state = state
        if not self._following and time.monotonic() >= self._retry_at:
            self._follow()

    # --- from the daemon (network thread: only the nested ``async def``s)
    def _follow(self) -> None:
        self._following = True
        name, link, view = self.panel.name, self.link, self
        ui = link.model.call_in_ui

        async def follow(lab: Lab) -> None:
            params = link.instrument(lab, name).parameters
            try:
                async with await params.watch() as changes:
                    listed, values, errors = await _read_parameters(params)
                    ui(lambda: view._listed(listed, values, errors))
                    async for change in changes:
                        if view.closed:
                            return
                        ui(
                            partial(
                                view._changed,
                                change.parameter,
                                change.value,
                                change.by,
                                change.timestamp,
                            )
                        )
            finally:
                ui(view._follow_ended)

        self.link.submit(follow, failed=self._follow_failed)

    def read_all(self) -> None:
        name, link = self.panel.name, self.link

        async def read(lab: Lab) -> Any:
            return await _read_parameters(link.instrument(lab, name).parameters)

        self.link.submit(read, done=lambda got: self._listed(*got), failed=self._follow_failed)

    def _follow_ended(self) -> None:
        self._following = False

    def _follow_failed(self, exc: BaseException) -> None:
        self._following = False
        self._retry_at = time.monotonic() + self.RETRY_S
        if not self.closed:
            dpg.set_value(f"{self.tag}.status", f"parameters unavailable: {_one_line(exc)}")
            dpg.show_item(f"{self.tag}.status")

    def _listed(
        self, listed: list[Parameter], values: dict[str, ParameterValue], errors: dict[str, str]
    ) -> None:
        if self.closed:
            return
        if not settings.same_rows(listed, self.parameters):
            self._build_rows(listed)
        for parameter in listed:
            if parameter.name in values:
                self._show(parameter.name, values[parameter.name])
            elif parameter.name in errors:
                self._error(parameter.name, errors[parameter.name])
        dpg.hide_item(f"{self.tag}.status")
        # Configurable with nothing to set (a simulator without settings): no section at all.
        dpg.configure_item(f"{self.tag}.open", show=bool(listed))
        if not listed:
            dpg.set_value(f"{self.tag}.status", "no parameters")
            dpg.hide_item(f"{self.tag}.body")

    def _changed(self, name: str, value: ParameterValue, by: str, timestamp: float) -> None:
        if self.closed or not any(p.name == name for p in self.parameters):
            return
        self.changes_seen += 1
        self._show(name, value)
        shown = find(self.parameters, name).show(value)
        dpg.set_value(
            f"{self.tag}.changed", f"{name} = {shown}  (set by {by} at {_clock_time(timestamp)})"
        )

    # --- drawing
    def _build_rows(self, listed: list[Parameter]) -> None:
        dpg.delete_item(f"{self.tag}.rows", children_only=True)
        self.parameters, self.held = list(listed), {}
        with dpg.table(
            parent=f"{self.tag}.rows", header_row=False, policy=dpg.mvTable_SizingFixedFit
        ):
            for _ in range(3):
                dpg.add_table_column()
            for parameter in listed:
                self._row(parameter)

    def _row(self, p: Parameter) -> None:
        tag = f"{self.tag}.{p.name}"
        hint = settings.tooltip(p)
        with dpg.table_row():
            with dpg.group():
                dpg.add_text(p.name, tag=f"{tag}.name")
                with dpg.tooltip(f"{tag}.name"):
                    dpg.add_text(hint)
            with dpg.group(horizontal=True):
                kind = settings.widget(p)
                common: dict[str, Any] = {
                    "tag": tag,
                    "enabled": p.writable,
                    "callback": self.apply,
                    "user_data": p.name,
                }
                if kind == "checkbox":
                    dpg.add_checkbox(**common)
                elif kind == "combo":
                    dpg.add_combo(list(p.choices), width=140, **common)
                else:
                    dpg.add_input_text(
                        width=140,
                        label=p.unit,
                        on_enter=True,
                        hint="not reported" if not p.readable else "",
                        **common,
                    )
                    if p.writable:
                        dpg.add_button(
                            label="Set", tag=f"{tag}.set", callback=self.apply, user_data=p.name
                        )
                if not p.writable:
                    dpg.bind_item_theme(tag, _disabled_theme())
                with dpg.tooltip(tag):
                    dpg.add_text(hint)
            with dpg.group(horizontal=True):
                dpg.add_text(settings.note(p), tag=f"{tag}.note", color=GREY)
                dpg.add_text("", tag=f"{tag}.error", color=ERROR_COLOUR, show=False)

    def _show(self, name: str, value: ParameterValue) -> None:
        """``value`` is held now: show it (unless the person is typing in that widget)."""
        self.held[name] = value
        tag = f"{self.tag}.{name}"
        if not dpg.is_item_active(tag):
            dpg.set_value(tag, settings.display(find(self.parameters, name), value))

    def _error(self, name: str, text: str) -> None:
        dpg.set_value(f"{self.tag}.{name}.error", text)
        dpg.show_item(f"{self.tag}.{name}.error")

    # --- to the daemon
    def apply(self, sender: Any, app_data: Any, user_data: Any) -> None:
        """Set the parameter ``user_data`` to what its widget holds (a Set button, Enter
        in an input, or a checkbox/combo change); the widget then shows the value the
        instrument holds, or, when refused, the held value again and the refusal."""
        name = str(user_data)
        parameter = find(self.parameters, name)
        try:
            value = settings.to_send(parameter, dpg.get_value(f"{self.tag}.{name}"))
        except ValueError as exc:
            self._refused(name, str(exc))
            return
        dpg.hide_item(f"{self.tag}.{name}.error")
        instrument, link = self.panel.name, self.link

        async def set_it(lab: Lab) -> ParameterValue:
            return await link.instrument(lab, instrument).parameters.set(name, value)

        self.link.submit(
            set_it,
            done=lambda held: self._show(name, held),
            failed=lambda exc: self._refused(name, _one_line(exc)),
        )

    def _refused(self, name: str, text: str) -> None:
        if self.closed:
            return
        self._error(name, text)
        tag = f"{self.tag}.{name}"
        if name in self.held:
            dpg.set_value(tag, settings.display(find(self.parameters, name), self.held[name]))
        elif settings.widget(find(self.parameters, name)) == "input":
            dpg.set_value(tag, "")


_NOT_RUNNING = ("starting", "restarting", "faulted", "stopped")


async def _read_parameters(
    params: Parameters,
) -> tuple[list[Parameter], dict[str, ParameterValue], dict[str, str]]:
    """Every parameter and the value of each readable one; a value that cannot be read
    is its error's one line (plain text: nothing of the wire reaches the UI thread)."""
    listed = await params.list()
    values: dict[str, ParameterValue] = {}
    errors: dict[str, str] = {}
    for parameter in listed:
        if not parameter.readable:
            continue
        try:
            values[parameter.name] = await params.get(parameter.name)
        except Exception as exc:
            errors[parameter.name] = _one_line(exc)
    return listed, values, errors


def _one_line(exc: BaseException) -> str:
    """``OutOfRange: wavelength 5000 nm is outside [400, 1800] nm``: the daemon's reason,
    never a traceback."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


_DISABLED_THEME: int | str | None = None


def _disabled_theme() -> int | str:
    """Grey text for widgets of read-only parameters (DearPyGui draws disabled widgets
    like enabled ones unless a theme says otherwise)."""
    global _DISABLED_THEME
    if _DISABLED_THEME is None or not dpg.does_item_exist(_DISABLED_THEME):
        with dpg.theme() as theme:
            for component in (dpg.mvInputText, dpg.mvCheckbox, dpg.mvCombo):
                with dpg.theme_component(component, enabled_state=False):
                    dpg.add_theme_color(dpg.mvThemeCol_Text, GREY)
                    dpg.add_theme_color(dpg.mvThemeCol_FrameBg, (40, 40, 45))
        _DISABLED_THEME = theme
    return _DISABLED_THEME


class FaultView(SectionView):
    """``FaultInjectable`` (simulated instruments): make the device misbehave on purpose."""

    def build(self) -> None:
        with dpg.group(horizontal=True):
            dpg.add_combo(
                ["raise", "hang", "disconnect", "clear"],
                default_value="raise",
                tag=f"{self.tag}.kind",
                width=120,
            )
            dpg.add_button(label="Inject fault", tag=f"{self.tag}.inject", callback=self.inject)

    def inject(self) -> None:
        self.call("FaultInjectable", "inject_fault", str(dpg.get_value(f"{self.tag}.kind")))


class CameraView(SectionView):
    """``FrameProducer``: live image, colour map, contrast, histogram, ROI drawing."""

    def build(self) -> None:
        tag = self.tag
        self.lut = colormaps.lut(colormaps.NAMES[0])
        self.texture: DoubleBufferedTexture | None = None
        self.pending: Frame | None = None
        self.shown: Frame | None = None
        self.rendered: Rendered | None = None
        self.frames_shown = 0
        self._fps_count = 0
        self._fps_since = time.monotonic()
        self.fps = 0.0
        self._drag_start: tuple[float, float] | None = None
        with dpg.group(horizontal=True):
            with dpg.drawlist(IMAGE_BOX, IMAGE_BOX, tag=f"{tag}.canvas"):
                dpg.draw_rectangle(
                    (0, 0), (IMAGE_BOX, IMAGE_BOX), fill=(20, 20, 20), color=(60, 60, 60)
                )
                dpg.draw_text((10, 10), "waiting for frames...", size=16, tag=f"{tag}.placeholder")
                dpg.draw_rectangle(
                    (0, 0),
                    (0, 0),
                    color=(255, 80, 80),
                    thickness=2,
                    tag=f"{tag}.roi_box",
                    show=False,
                )
            with dpg.group(width=230):
                dpg.add_text("", tag=f"{tag}.info")
                dpg.add_combo(
                    list(colormaps.NAMES),
                    default_value=colormaps.NAMES[0],
                    label="colours",
                    tag=f"{tag}.colormap",
                    callback=self.set_colormap,
                )
                dpg.add_checkbox(label="auto contrast", default_value=True, tag=f"{tag}.auto")
                dpg.add_input_float(label="low", tag=f"{tag}.low", step=0, width=120)
                dpg.add_input_float(
                    label="high", tag=f"{tag}.high", step=0, width=120, default_value=4095
                )
                with dpg.plot(
                    height=140, width=250, no_title=True, no_mouse_pos=True, tag=f"{tag}.histplot"
                ):
                    dpg.add_plot_axis(dpg.mvXAxis, tag=f"{tag}.hx", no_tick_labels=False)
                    with dpg.plot_axis(
                        dpg.mvYAxis,
                        tag=f"{tag}.hy",
                        no_tick_labels=True,
                        scale=dpg.mvPlotScale_Log10,
                    ):
                        dpg.add_stair_series([], [], tag=f"{tag}.hist", shaded=True)
                dpg.add_button(label="Snap one frame", tag=f"{tag}.snap", callback=self.snap)
                if "exposure" in self.section.controls:
                    with dpg.group(horizontal=True):
                        dpg.add_input_float(
                            label="s",
                            tag=f"{tag}.exposure",
                            width=100,
                            step=0,
                            default_value=0.01,
                            format="%.4f",
                        )
                        dpg.add_button(
                            label="Set exposure",
                            tag=f"{tag}.set_exposure",
                            callback=self.set_exposure,
                        )
                if "roi" in self.section.controls:
                    dpg.add_text("ROI: drag on the image", tag=f"{tag}.roi_text")
                    with dpg.group(horizontal=True):
                        dpg.add_button(
                            label="Apply ROI", tag=f"{tag}.apply_roi", callback=self.apply_roi
                        )
                        dpg.add_button(
                            label="Full frame", tag=f"{tag}.full_roi", callback=self.full_roi
                        )
                    dpg.add_input_intx(label="x y w h", size=4, tag=f"{tag}.roi", width=200)
                if "trigger" in self.section.controls:
                    with dpg.group(horizontal=True):
                        dpg.add_button(
                            label="Arm",
                            tag=f"{tag}.arm",
                            callback=lambda: self.call("Triggerable", "arm"),
                        )
                        dpg.add_button(
                            label="Trigger",
                            tag=f"{tag}.trigger",
                            callback=lambda: self.call("Triggerable", "trigger"),
                        )
        if "roi" in self.section.controls:
            with dpg.item_handler_registry(tag=f"{tag}.handlers"):
                dpg.add_item_clicked_handler(dpg.mvMouseButton_Left, callback=self._press)
            dpg.bind_item_handler_registry(f"{tag}.canvas", f"{tag}.handlers")

    # --- data
    def on_frame(self, stream: str, frame: Frame) -> None:
        self.pending = frame

    def tick(self, clock: Clock) -> None:
        self._track_roi_drag()
        frame, self.pending = self.pending, None
        if frame is None:
            return
        self.show_frame(frame)

    def show_frame(self, frame: Frame) -> None:
        h, w = frame.data.shape[:2]
        step = max(1, -(-h // IMAGE_BOX), -(-w // IMAGE_BOX))
        th, tw = -(-h // step), -(-w // step)
        if self.texture is None or (self.texture.height, self.texture.width) != (th, tw):
            self._new_texture(th, tw)
        assert self.texture is not None
        limits = None
        if not dpg.get_value(f"{self.tag}.auto"):
            limits = (
                float(dpg.get_value(f"{self.tag}.low")),
                float(dpg.get_value(f"{self.tag}.high")),
            )
        self.rendered = render(
            frame.data, IMAGE_BOX, IMAGE_BOX, self.lut, limits, out=self.texture.back_buffer
        )
        self.texture.show(f"{self.tag}.image")
        self.shown = frame
        r = self.rendered
        if limits is None:
            dpg.set_value(f"{self.tag}.low", r.lo)
            dpg.set_value(f"{self.tag}.high", r.hi)
        hist = r.hist.rebinned(64)
        dpg.set_value(
            f"{self.tag}.hist", [hist.edges[:-1].tolist(), np.maximum(hist.counts, 0.5).tolist()]
        )
        dpg.set_axis_limits(f"{self.tag}.hx", float(hist.edges[0]), float(hist.edges[-1]))
        dpg.fit_axis_data(f"{self.tag}.hy")
        self.frames_shown += 1
        self._fps_count += 1
        elapsed = time.monotonic() - self._fps_since
        if elapsed >= 1.0:
            self.fps, self._fps_count, self._fps_since = (
                self._fps_count / elapsed,
                0,
                time.monotonic(),
            )
        dpg.set_value(
            f"{self.tag}.info",
            f"frame #{frame.seq} at {_clock_time(frame.timestamp)}  {w}x{h} {frame.data.dtype}\n"
            f"roi {frame.roi.x},{frame.roi.y}  shown 1:{r.step}  {self.fps:.1f} fps\n"
            f"contrast {r.lo:.0f} .. {r.hi:.0f}",
        )

    def _new_texture(self, th: int, tw: int) -> None:
        if self.texture is not None:
            self.texture.delete()
        self.texture = DoubleBufferedTexture(self.panel.texture_registry, th, tw)
        scale = IMAGE_BOX / max(th, tw)
        self.image_size = (tw * scale, th * scale)
        tag = f"{self.tag}.image"
        if dpg.does_item_exist(tag):
            dpg.delete_item(tag)
        dpg.hide_item(f"{self.tag}.placeholder")
        dpg.draw_image(
            self.texture.front_tag,
            (0, 0),
            self.image_size,
            tag=tag,
            parent=f"{self.tag}.canvas",
            before=f"{self.tag}.roi_box",
        )

    # --- controls
    def set_colormap(self) -> None:
        self.lut = colormaps.lut(str(dpg.get_value(f"{self.tag}.colormap")))
        if self.shown is not None:
            self.pending = self.pending or self.shown

    def snap(self) -> None:
        self.call("FrameProducer", "snap", done=self.show_frame)

    def set_exposure(self) -> None:
        self.call("ExposureControl", "set_exposure", float(dpg.get_value(f"{self.tag}.exposure")))

    def apply_roi(self) -> None:
        x, y, w, h = (int(v) for v in dpg.get_value(f"{self.tag}.roi")[:4])
        self.call(
            "RoiSelectable",
            "set_roi",
            Roi(x, y, w, h),
            done=lambda _: dpg.set_value(f"{self.tag}.roi_text", f"ROI set: {x},{y} {w}x{h}"),
        )
        dpg.hide_item(f"{self.tag}.roi_box")

    def full_roi(self) -> None:
        def got(size: tuple[int, int]) -> None:
            dpg.set_value(f"{self.tag}.roi", [0, 0, size[0], size[1], 0])
            self.apply_roi()

        self.call("RoiSelectable", "sensor_size", done=got)

    # --- ROI drawing: press on the image, drag, release
    def _press(self) -> None:
        if self.rendered is not None:
            self._drag_start = tuple(dpg.get_drawing_mouse_pos())  # type: ignore[assignment]

    def _track_roi_drag(self) -> None:
        if self._drag_start is None or self.shown is None or self.rendered is None:
            return
        x0, y0 = self._drag_start
        x1, y1 = dpg.get_drawing_mouse_pos()
        dpg.configure_item(
            f"{self.tag}.roi_box",
            pmin=(min(x0, x1), min(y0, y1)),
            pmax=(max(x0, x1), max(y0, y1)),
            show=True,
        )
        self.set_roi_from_box(x0, y0, x1, y1)
        if not dpg.is_mouse_button_down(dpg.mvMouseButton_Left):
            self._drag_start = None

    def set_roi_from_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Canvas pixels → sensor pixels of the frame on screen, into the ROI inputs."""
        assert self.shown is not None
        frame = self.shown
        h, w = frame.data.shape[:2]
        sx, sy = w / self.image_size[0], h / self.image_size[1]
        left, right = sorted((x0, x1))
        top, bottom = sorted((y0, y1))
        x = frame.roi.x + int(max(0, left) * sx)
        y = frame.roi.y + int(max(0, top) * sy)
        width = max(1, int((min(right, self.image_size[0]) - max(0, left)) * sx))
        height = max(1, int((min(bottom, self.image_size[1]) - max(0, top)) * sy))
        dpg.set_value(f"{self.tag}.roi", [x, y, width, height, 0])
        dpg.set_value(f"{self.tag}.roi_text", f"ROI drawn: {x},{y} {width}x{height}")


VIEWS: dict[str, type[SectionView]] = {
    "camera": CameraView,
    "motion": MotionView,
    "stop": StopView,
    "reading": ReadingView,
    "temperature": ReadingView,
    "cooler": CoolerView,
    "supply": SupplyView,
    "switch": SwitchView,
    "faults": FaultView,
    "wavelength": WavelengthView,
    "loop": LoopView,
    "settings": SettingsView,
}


class InstrumentPanel:
    """The whole panel of one instrument: header with state, then its sections."""

    def __init__(
        self,
        info: InstrumentInfo,
        link: NetworkThread,
        parent: int | str,
        texture_registry: int | str,
    ) -> None:
        self.info = info
        self.name = info.name
        self.link = link
        self.texture_registry = texture_registry
        self.sections = sections_for(info.name, info.capabilities)
        self.views: list[SectionView] = []
        with dpg.collapsing_header(
            label=f"{info.name}   [{info.driver}]",
            default_open=True,
            parent=parent,
            tag=f"{self.name}.panel",
        ):
            views = [VIEWS[section.kind](self, section) for section in self.sections]
            with dpg.group(horizontal=True):
                dpg.add_text("state:")
                dpg.add_text("", tag=f"{self.name}.state")
                for view in views:
                    view.header()
                dpg.add_text("", tag=f"{self.name}.last_fault", color=(240, 70, 70))
            dpg.add_text("", tag=f"{self.name}.error", color=(240, 120, 120), wrap=600, show=False)
            extra = unknown_capabilities(info.capabilities)
            if extra:
                dpg.add_text(f"other capabilities (no controls here): {', '.join(extra)}")
            for view in views:
                if view.TITLED:
                    dpg.add_text(view.section.title, color=TITLE_COLOUR, tag=f"{view.tag}.title")
                view.build()
                self.views.append(view)
            dpg.add_separator()
        self.set_state(info)

    def set_state(self, info: InstrumentInfo) -> None:
        self.info = info
        text = info.state.upper()
        if info.reason:
            text += f": {info.reason}"
        if info.restarts:
            text += f"  (restarts: {info.restarts})"
        dpg.set_value(f"{self.name}.state", text)
        dpg.configure_item(
            f"{self.name}.state", color=STATE_COLOURS.get(info.state, (255, 255, 255))
        )
        if info.state == "faulted" and info.reason:
            # Restarts are quick: keep the last fault visible after the state moves on.
            dpg.set_value(f"{self.name}.last_fault", f"last fault: {info.reason}")

    def reread_settings(self) -> None:
        """A capability call may have changed a parameter (``set_wavelength`` is also the
        ``wavelength`` parameter) without a parameter set the watch would report."""
        for view in self.views:
            if isinstance(view, SettingsView) and view.parameters:
                view.read_all()

    def show_error(self, exc: BaseException) -> None:
        dpg.set_value(f"{self.name}.error", _one_line(exc))
        dpg.show_item(f"{self.name}.error")

    def delete(self) -> None:
        for view in self.views:
            view.close()
            texture = getattr(view, "texture", None)
            if texture is not None:
                texture.delete()
        dpg.delete_item(f"{self.name}.panel")


def _clock_time(t: float) -> str:
    """``HH:MM:SS.mmm`` (local time): when a frame was taken, to the millisecond."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1000):03d}"
