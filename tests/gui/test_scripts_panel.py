"""The Scripts panel (gui/scripts_panel.py) against a real daemon, under Xvfb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gui.scripts_panel import parse_fields
from labd.client import connect_blocking
from tests.gui.conftest import Daemon, Gui, load_shot
from tests.gui.test_app import region

SCAN = Path(__file__).resolve().parents[2] / "wasm_scripts" / "examples" / "wat" / "scan.wat"


def test_run_a_scan_from_the_panel(display: str, daemon: Daemon, tmp_path: Path) -> None:
    shot = tmp_path / "done"
    gui = Gui(
        display,
        daemon.socket,
        tmp_path,
        [
            {"wait_connected": True},
            {"set": "scripts.path", "value": str(SCAN)},
            {"set": "scripts.args", "value": "steps=11"},
            {"set": "scripts.grants", "value": "stage:Movable meter camera:FrameProducer"},
            {"click": "scripts.run"},
            {"wait_text": "scripts.state", "contains": "RUNNING"},
            {"wait_text": "scripts.state", "contains": "SUCCEEDED", "timeout": 60},
            {"screenshot": str(shot), "rects": ["scripts.state", "scripts.result.peak_position"]},
            # A refused run shows its typed reason, and the daemon's log line says why.
            {"set": "scripts.grants", "value": "stage meter"},
            {"click": "scripts.run"},
            {"wait_text": "scripts.state", "contains": "[denied]"},
            {"wait_text": "scripts.log", "contains": "not granted FrameProducer on 'camera'"},
            {"quit": True},
        ],
    )
    gui.wait()

    # The panel shows what the daemon computed.
    with connect_blocking(str(daemon.socket)) as lab:
        scripts = lab.scripts()
        first = min(scripts.runs(), key=lambda r: r.id)
        peak = scripts.get_run(first.id).wait()["peak_position"]
    assert peak == pytest.approx(3.0, abs=0.05)
    assert (first.state, first.grants) == (
        "succeeded",
        "camera:FrameProducer; meter:*; stage:Movable",
    )

    pixels, layout = load_shot(shot)
    assert layout["values"]["scripts.result.peak_position"] == f"{peak:.6g}"
    # The state reads SUCCEEDED in green, and the result cell has text on it.
    state = region(pixels, *layout["rects"]["scripts.state"])
    assert ((state[..., 1] > 180) & (state[..., 0] < 120)).sum() > 20
    cell = region(pixels, *layout["rects"]["scripts.result.peak_position"])
    assert cell.size and (cell.max(axis=2) > 150).sum() > 10  # light glyphs on the dark table
    assert np.ptp(cell) > 100


def test_fields_are_checked_before_anything_is_sent() -> None:
    request = parse_fields("/x/scan.wat", "", "steps=21, start=2", "stage:Movable,Stoppable meter")
    assert (request.name, request.args) == ("scan", {"steps": "21", "start": "2"})
    assert request.grants == ["stage:Movable,Stoppable", "meter"]
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_fields("/x/scan.wat", "", "steps", "")
    with pytest.raises(ValueError, match="choose a script file"):
        parse_fields(" ", "", "", "")
