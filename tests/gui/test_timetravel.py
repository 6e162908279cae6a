"""Time travel in the real GUI (Xvfb) against a real daemon: pause, scrub back to before
the GUI was even started, check that the camera and the meter plot show exactly what the
daemon recorded at that moment -- read from the local rings, and through the daemon's
replay (``--no-local-rings``) -- then go back to live."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from labd import records
from labd.client import connect_blocking
from tests.gui.conftest import Daemon, load_shot

LAB = """
[daemon]
data_dir = "data"
retention_s = 60

[instruments.stage]
driver = "sim.stage"
poll_hz = 10

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 20

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 5
sensor_width = 256
sensor_height = 192
"""

# The GUI scrubs back AGO_S from the moment it pauses. It pauses only once it is connected
# and has drawn frames and points, which takes 1-6 s on a loaded 2-core CI machine; so the
# daemon records for longer than AGO_S first, and AGO_S is well above that start-up time,
# so that the moment shown predates the GUI's launch on any machine we run on.
AGO_S = 10.0
INFO = "camera.camera.info"
METER = "meter.reading.value"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon that has been recording for a while before any GUI starts."""
    daemon = Daemon(tmp_path_factory.mktemp("timetravel"))
    daemon.config.write_text(LAB)
    daemon.start()
    time.sleep(AGO_S + 1.0)  # history from before any GUI
    yield daemon
    daemon.stop()


def run_gui(display: str, daemon: Daemon, tmp: Path, *extra: str) -> tuple[dict, dict]:
    """Scrub back AGO_S seconds, take a shot, go live, take another; their values."""
    paused, live = tmp / "paused", tmp / "live"
    where = "the daemon's replay" if "--no-local-rings" in extra else "the local ring"
    steps = [
        {"wait_connected": True},
        {"wait_frames": "camera.camera", "count": 2},
        {"wait_points": "meter.reading", "min": 5},
        {"set": "timetravel.paused", "value": True},
        {"click": "timetravel.paused"},
        {"set": "timetravel.ago", "value": AGO_S},
        {"click": "timetravel.ago"},
        {"wait_text": "timetravel.text", "contains": f"from {where}", "timeout": 15},
        {"sleep": 0.3},  # the plot redraws at 10 Hz
        {"screenshot": str(paused), "rects": ["timetravel.at", INFO, METER]},
        {"click": "timetravel.live"},
        {"wait_text": "timetravel.text", "contains": "LIVE"},
        {"sleep": 1.0},
        {"screenshot": str(live), "rects": ["timetravel.text", INFO]},
        {"quit": True},
    ]
    actions = tmp / "actions.json"
    actions.write_text(json.dumps(steps))
    out = subprocess.run(
        [sys.executable, "-m", "labd", "gui", "--connect", str(daemon.socket),
         "--script-actions", str(actions), *extra],
        env={**os.environ, "DISPLAY": display},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    result = json.loads((tmp / "actions.json.result.json").read_text())
    assert result["ok"], f"{result['error']}\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    _, paused_layout = load_shot(paused)
    _, live_layout = load_shot(live)
    return paused_layout, live_layout


@pytest.mark.parametrize("mode", [(), ("--no-local-rings",)], ids=["local-rings", "replay"])
def test_scrub_back_shows_the_recorded_moment_then_live(
    display: str, recording: Daemon, tmp_path: Path, mode: tuple[str, ...]
) -> None:
    launched = time.time()
    paused, live = run_gui(display, recording, tmp_path, *mode)

    t = float(paused["values"]["timetravel.at"])
    assert t < launched, "the moment shown predates the GUI: it came from the daemon"
    with connect_blocking(str(recording.socket)) as lab:
        frames = lab.replay("camera/frames", t - 2.0, t)
        readings = lab.replay("meter/reading", t - 60.0, t)

    # The camera shows the last frame taken before t: same number, time and pixels.
    stamps = np.asarray(frames.column("timestamp"))
    row = int(np.nonzero(stamps <= t)[0][-1])
    expected = records.frame_from_batch(frames.slice(row, 1).combine_chunks().to_batches()[0])
    info = paused["values"][INFO]
    assert f"frame #{expected.seq} at " in info, info
    shown = np.load(paused["images"]["camera/frames"]["frame"])
    np.testing.assert_array_equal(shown, expected.data)

    # The meter shows the last reading before t.
    ts = np.asarray(readings.column("timestamp"))
    values = np.asarray(readings.column("value"))[ts <= t]
    assert paused["values"][METER].split()[0] == f"{values[-1]:.6g}"

    # Back to live: newer frames again.
    assert live["values"]["timetravel.text"] == "LIVE"
    live_seq = int(re.search(r"frame #(\d+)", live["values"][INFO]).group(1))  # type: ignore[union-attr]
    assert live_seq > expected.seq + 5 * (AGO_S - 1)
