"""Which controls an instrument panel has, decided from its capability names alone.

The GUI knows no driver: a panel is the union of the sections its capabilities imply, so
a new driver with known capabilities gets a working panel for free. This module is the
pure decision (testable without a display); :mod:`gui.panels` draws it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """One block of an instrument panel.

    ``kind`` selects the drawing code; ``controls`` lists the widgets in it (by name, in
    order); ``stream`` is the live stream it plots or shows, if any.
    """

    kind: str
    title: str
    controls: tuple[str, ...]
    stream: str | None = None
    capabilities: tuple[str, ...] = field(default=())


def sections_for(instrument: str, capabilities: Iterable[str]) -> list[Section]:
    """The sections of ``instrument``'s panel, in display order.

    Capability names the GUI does not know are ignored here (the panel lists them), so an
    older GUI still works against a newer daemon.
    """
    caps = set(capabilities)
    out: list[Section] = []
    if "FrameProducer" in caps:
        controls = ["image", "colormap", "contrast", "histogram", "snap"]
        used = ["FrameProducer"]
        if "RoiSelectable" in caps:
            controls.append("roi")
            used.append("RoiSelectable")
        if "ExposureControl" in caps:
            controls.append("exposure")
            used.append("ExposureControl")
        if "Triggerable" in caps:
            controls.append("trigger")
            used.append("Triggerable")
        out.append(
            Section("camera", "Live image", tuple(controls), f"{instrument}/frames", tuple(used))
        )
    if "Movable" in caps:
        controls = ["position", "target", "jog"]
        used = ["Movable"]
        if "Stoppable" in caps:
            controls.append("stop")
            used.append("Stoppable")
        controls.append("plot")
        out.append(
            Section("motion", "Motion", tuple(controls), f"{instrument}/position", tuple(used))
        )
    elif "Stoppable" in caps:
        out.append(Section("stop", "Stop", ("stop",), None, ("Stoppable",)))
    if "Readable" in caps:
        out.append(
            Section("reading", "Reading", ("value", "plot"), f"{instrument}/reading", ("Readable",))
        )
    if "TemperatureSensor" in caps:
        out.append(
            Section(
                "temperature",
                "Temperature",
                ("value", "plot"),
                f"{instrument}/temperature",
                ("TemperatureSensor",),
            )
        )
    if "Cooled" in caps:
        out.append(
            Section(
                "cooler",
                "Cooler",
                ("setpoint", "value", "state"),
                f"{instrument}/sensor_temperature",
                ("Cooled",),
            )
        )
    if "VoltageSource" in caps:
        controls = ["setpoint", "limit", "readback"]
        used = ["VoltageSource"]
        if "Switchable" in caps:
            controls.append("output")
            used.append("Switchable")
        out.append(Section("supply", "Supply", tuple(controls), None, tuple(used)))
    elif "Switchable" in caps:
        out.append(Section("switch", "Output", ("output",), None, ("Switchable",)))
    if "WavelengthTunable" in caps:
        out.append(
            Section("wavelength", "Wavelength", ("value", "set"), None, ("WavelengthTunable",))
        )
    if "TemperatureController" in caps:
        out.append(
            Section(
                "loop",
                "Temperature loop",
                ("setpoint", "ramp", "heater"),
                None,
                ("TemperatureController",),
            )
        )
    if "Configurable" in caps:
        # One row per parameter; which rows is known only once the daemon lists them
        # (gui.panels.SettingsView), so the section names no fixed controls.
        out.append(Section("settings", "Settings", ("parameters",), None, ("Configurable",)))
    if "FaultInjectable" in caps:
        out.append(Section("faults", "Simulated faults", ("inject",), None, ("FaultInjectable",)))
    return out


def unknown_capabilities(capabilities: Iterable[str]) -> list[str]:
    """Capability names no section uses (shown on the panel as text): a capability newer
    than this GUI still shows, by name."""
    names = list(capabilities)
    used = {c for section in sections_for("", names) for c in section.capabilities}
    return [c for c in names if c not in used]
