"""The settings section: generated from an instrument's parameters, under Xvfb, against a
real daemon — values shown, set through the GUI, refused with the daemon's reason, and
sets made by someone else appearing live (docs/gui.md, "What you see")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from capabilities import Parameter
from gui import settings
from gui.controls import sections_for, unknown_capabilities
from labd.client import connect_blocking
from tests.gui.conftest import Daemon, Gui, load_shot, wait_for

SIM_LAB = """
[instruments.stage]
driver = "sim.stage"
poll_hz = 5

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 5

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 2
"""

# One parameter of every kind; an instrument that is not Configurable; and a simulated
# thermometer, Configurable with no parameters.
TUNABLE_LAB = """
[instruments.tunable]
driver = "tests.gui.tunable_driver:Tunable"

[instruments.plain]
driver = "tests.gui.tunable_driver:Plain"

[instruments.oven]
driver = "sim.thermometer"
name = "oven"
poll_hz = 2
"""

VIEWPORT = (1600, 1000)


def region(pixels: np.ndarray, rect: list[float]) -> np.ndarray:
    x, y, w, h = rect
    return pixels[int(y) : int(y + h), int(x) : int(x + w), :3].astype(np.float64)


def on_screen(rect: list[float]) -> bool:
    x, y, w, h = rect
    return w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= VIEWPORT[0] and y + h <= VIEWPORT[1]


# --- what the section decides, without a display


def test_every_kind_gets_its_widget_and_configurable_its_section() -> None:
    kinds = [s.kind for s in sections_for("m", ["Readable", "WavelengthTunable", "Configurable"])]
    assert kinds == ["reading", "wavelength", "settings"]
    assert [s.kind for s in sections_for("t", ["TemperatureController"])] == ["loop"]
    assert [s.kind for s in sections_for("oven", ["TemperatureSensor"])] == ["temperature"]
    assert unknown_capabilities(["Configurable", "WavelengthTunable"]) == []
    widgets = {k: settings.widget(Parameter("p", k, choices=("a",))) for k in settings.WIDGETS}
    assert widgets == {
        "float": "input", "int": "input", "text": "input", "bool": "checkbox", "choice": "combo"
    }  # fmt: skip


def test_values_shown_and_sent_as_people_write_them() -> None:
    gain = Parameter("gain", "int", low=1, high=16)
    wavelength = Parameter("wavelength", "float", "nm", 400, 1800)
    assert settings.display(gain, 4.0) == "4"  # a whole number comes over the wire as float
    assert settings.display(wavelength, 1064.5) == "1064.5"
    assert settings.display(Parameter("on", "bool"), True) is True
    # Numbers go as typed: the daemon converts the unit and refuses what is out of range.
    assert settings.to_send(wavelength, " 1.064 um ") == "1.064 um"
    assert settings.to_send(wavelength, "5000") == "5000"
    with pytest.raises(ValueError, match="type a number"):
        settings.to_send(wavelength, "  ")
    assert settings.note(wavelength) == "[400, 1800] nm"
    assert settings.note(Parameter("serial", "text", writable=False)) == "read-only"
    assert "write-only" in settings.note(Parameter("att", "float", readable=False))


# --- the real GUI against a real daemon


def test_settings_of_simulated_instruments_set_refused_and_set_elsewhere(
    display: str, tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, SIM_LAB)
    daemon.start()
    try:
        _sim_lab(display, daemon, tmp_path)
    finally:
        daemon.stop()


def _sim_lab(display: str, daemon: Daemon, tmp_path: Path) -> None:
    shown, refused, outside = tmp_path / "shown", tmp_path / "refused", tmp_path / "outside"
    rows = [
        "meter.settings.wavelength",
        "meter.settings.range",
        "camera.settings.gain",
        "camera.settings.binning",
        "camera.settings.trigger_mode",
    ]
    gui = Gui(
        display,
        daemon.socket,
        tmp_path,
        [
            {"wait_connected": True},
            # Closed at first (the live controls fit the first screen): open two of them.
            {"set": "meter.settings.open", "value": True},
            {"click": "meter.settings.open"},
            {"set": "camera.settings.open", "value": True},
            {"click": "camera.settings.open"},
            {"wait_text": "meter.settings.wavelength", "contains": "1064"},
            {"wait_text": "camera.settings.trigger_mode", "contains": "internal"},
            {"screenshot": str(shown), "rects": rows},
            # A quantity in another unit: the daemon converts it, the widget shows what is held.
            {"set": "meter.settings.wavelength", "value": "1.55 um"},
            {"click": "meter.settings.wavelength.set"},
            {"wait_text": "meter.settings.wavelength", "contains": "1550"},
            {"set": "meter.settings.range", "value": "1 W"},
            {"click": "meter.settings.range"},
            {"wait_text": "meter.settings.changed", "contains": "range = 1 W"},
            # Out of range: the daemon's reason beside the widget, which shows the held value.
            {"set": "meter.settings.wavelength", "value": "5000"},
            {"click": "meter.settings.wavelength.set"},
            {"wait_text": "meter.settings.wavelength.error", "contains": "outside"},
            {"wait_text": "meter.settings.wavelength", "contains": "1550"},
            {"screenshot": str(refused), "rects": [*rows, "meter.settings.wavelength.error"]},
            # Now the test sets the camera's gain with the blocking client: it appears here.
            {"wait_text": "camera.settings.gain", "contains": "4", "timeout": 60},
            {"wait_text": "camera.settings.changed", "contains": "gain = 4"},
            {"screenshot": str(outside), "rects": rows},
            {"quit": True},
        ],
    )
    wait_for(Path(f"{refused}.png"))
    with connect_blocking(str(daemon.socket)) as lab:
        meter = lab.instrument("meter").parameters
        assert meter.get("wavelength") == pytest.approx(1550.0)  # the refused 5000 changed nothing
        assert meter.get("range") == "1 W"
        assert lab.instrument("camera").parameters.set("gain", 4) == pytest.approx(4.0)
    gui.wait()

    pixels, layout = load_shot(shown)
    assert "settings" in layout["sections"]["meter"] and "settings" in layout["sections"]["camera"]
    assert layout["hidden"]["stage"] == ["settings"]  # not opened
    assert "wavelength" in layout["sections"]["meter"]  # WavelengthTunable has its own section
    values = layout["values"]
    assert float(values["meter.settings.wavelength"]) == pytest.approx(1064.0)
    assert values["meter.settings.range"] == "auto"
    assert float(values["camera.settings.gain"]) == pytest.approx(1.0)
    assert values["camera.settings.binning"] == "1"
    for tag in rows:  # on screen, with something drawn in it (the value's text)
        rect = layout["rects"][tag]
        assert on_screen(rect), (tag, rect)
        assert (region(pixels, rect).max(axis=2) > 180).sum() > 10, tag

    pixels, layout = load_shot(refused)
    assert float(layout["values"]["meter.settings.wavelength"]) == pytest.approx(1550.0)
    error = layout["values"]["meter.settings.wavelength.error"]
    assert error.startswith("OutOfRange: ") and "\n" not in error and "Traceback" not in error
    line = region(pixels, layout["rects"]["meter.settings.wavelength.error"])
    assert ((line[..., 0] > 200) & (line[..., 1] < 150) & (line[..., 2] < 150)).sum() > 20  # red

    _, layout = load_shot(outside)
    assert float(layout["values"]["camera.settings.gain"]) == pytest.approx(4.0)


def test_every_kind_of_parameter_and_an_instrument_without_any(
    display: str, tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, TUNABLE_LAB)
    daemon.start()
    try:
        _tunable_lab(display, daemon, tmp_path)
    finally:
        daemon.stop()


def _tunable_lab(display: str, daemon: Daemon, tmp_path: Path) -> None:
    shown, after = tmp_path / "shown", tmp_path / "after"
    names = ("gain", "averaging", "label", "serial", "attenuator")
    rows = [*(f"tunable.settings.{p}" for p in names), "oven.settings.status"]
    gui = Gui(
        display,
        daemon.socket,
        tmp_path,
        [
            {"wait_connected": True},
            {"set": "tunable.settings.open", "value": True},
            {"click": "tunable.settings.open"},
            {"wait_text": "tunable.settings.serial", "contains": "TH-0042"},
            {"wait_text": "oven.settings.status", "contains": "no parameters"},
            {"screenshot": str(shown), "rects": rows},
            {"set": "tunable.settings.averaging", "value": True},
            {"click": "tunable.settings.averaging"},
            {"wait_text": "tunable.settings.changed", "contains": "averaging = true"},
            {"set": "tunable.settings.label", "value": "bench 4"},
            {"click": "tunable.settings.label.set"},
            {"wait_text": "tunable.settings.changed", "contains": "label = bench 4"},
            {"set": "tunable.settings.attenuator", "value": "10"},
            {"click": "tunable.settings.attenuator.set"},
            {"wait_text": "tunable.settings.changed", "contains": "attenuator = 10 dB"},
            # The typed capabilities have their own sections; a set there shows in the rows.
            {"set": "tunable.wavelength.target", "value": 800.0},
            {"click": "tunable.wavelength.set"},
            {"wait_text": "tunable.wavelength.value", "contains": "800 nm"},
            {"wait_text": "tunable.settings.wavelength", "contains": "800"},
            {"set": "tunable.loop.setpoint", "value": 300.0},
            {"click": "tunable.loop.set_setpoint"},
            {"wait_text": "tunable.loop.value", "contains": "set point: 300 K"},
            {"wait_text": "tunable.loop.value", "contains": "heater: 40 %"},
            {"screenshot": str(after), "rects": rows},
            {"quit": True},
        ],
    )
    gui.wait()
    pixels, layout = load_shot(shown)
    assert layout["sections"]["tunable"] == ["wavelength", "loop", "settings"]
    assert layout["sections"]["plain"] == ["reading"]  # not Configurable: no settings section
    assert layout["hidden"] == {"tunable": [], "plain": [], "oven": ["settings"]}
    assert layout["values"]["oven.settings.status"] == "no parameters"  # so no section
    values = layout["values"]
    assert values["tunable.settings.gain"] == "2"
    assert values["tunable.settings.averaging"] == "False"
    assert values["tunable.settings.label"] == "bench 3"
    assert values["tunable.settings.attenuator"] == ""  # write-only: nothing set yet
    # The read-only serial is drawn disabled (grey text), the writable label is not.
    serial = region(pixels, layout["rects"]["tunable.settings.serial"]).max(axis=2)
    label = region(pixels, layout["rects"]["tunable.settings.label"]).max(axis=2)
    assert (label > 200).sum() > 10 and (serial > 200).sum() == 0 and (serial > 120).sum() > 10

    _, layout = load_shot(after)
    assert layout["values"]["tunable.settings.attenuator"] == "10"  # the last value set
    with connect_blocking(str(daemon.socket)) as lab:
        tunable = lab.instrument("tunable").parameters
        assert tunable.get("averaging") is True
        assert tunable.get("label") == "bench 4"
        assert tunable.get("wavelength") == pytest.approx(800.0)
        assert tunable.get("serial") == "TH-0042"
