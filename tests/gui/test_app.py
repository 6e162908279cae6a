"""The GUI against a real daemon, under Xvfb, judged by its screenshots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.gui.conftest import Daemon, Gui, lab_snapshot, load_shot, wait_for


def region(pixels: np.ndarray, x: float, y: float, w: float, h: float) -> np.ndarray:
    return pixels[int(y) : int(y + h), int(x) : int(x + w), :3].astype(np.float64)


def test_panels_show_frame_plot_and_fault(display: str, daemon: Daemon, tmp_path: Path) -> None:
    live, paused = tmp_path / "live", tmp_path / "paused"
    gui = Gui(
        display,
        daemon.socket,
        tmp_path,
        [
            {"wait_connected": True},
            {"set": "camera.camera.colormap", "value": "gray"},
            {"click": "camera.camera.colormap"},
            {"set": "stage.motion.target", "value": 1.5},
            {"click": "stage.motion.go"},
            {"wait_frames": "camera.camera", "count": 3},
            {"wait_points": "meter.reading", "min": 20},
            {"wait_text": "oven.state", "contains": "FAULTED"},
            {"sleep": 0.5},
            {"screenshot": str(live)},
            {"set": "timetravel.ago", "value": 1.0},
            {"click": "timetravel.ago"},
            {"wait_text": "timetravel.text", "contains": "PAUSED"},
            {"screenshot": str(paused)},
            {"click": "timetravel.live"},
            {"wait_text": "timetravel.text", "contains": "LIVE"},
            {"quit": True},
        ],
    )
    gui.wait()
    pixels, layout = load_shot(live)

    # The camera panel shows the frame: the screen region correlates with the frame.
    image = layout["images"]["camera/frames"]
    frame = np.load(image["frame"]).astype(np.float64)
    shown = frame[:: image["step"], :: image["step"]]
    h, w = shown.shape
    on_screen = region(pixels, image["x"], image["y"], image["width"], image["height"])
    rows = (np.arange(on_screen.shape[0]) * h / image["height"]).astype(int)
    cols = (np.arange(on_screen.shape[1]) * w / image["width"]).astype(int)
    expected = np.clip(shown[np.ix_(rows, cols)], image["lo"], image["hi"])
    correlation = np.corrcoef(expected.ravel(), on_screen.mean(axis=2).ravel())[0, 1]
    assert correlation > 0.9, correlation
    # ...and not just any image: a different frame region does not correlate.
    shifted = np.roll(expected, 37, axis=1)
    assert np.corrcoef(shifted.ravel(), on_screen.mean(axis=2).ravel())[0, 1] < 0.5

    # The meter's plot has a line: plot-line blue pixels inside its plot area.
    plot = region(pixels, *layout["rects"]["meter.reading.plot"])
    line = (plot[..., 2] > 150) & (plot[..., 2] > plot[..., 0] + 60)
    assert line.sum() > 50, line.sum()

    # The faulted oven says so, in the fault colour.
    state = region(pixels, *layout["rects"]["oven.state"])
    red = (state[..., 0] > 200) & (state[..., 1] < 110) & (state[..., 2] < 110)
    assert red.sum() > 20
    ready = region(pixels, *layout["rects"]["stage.state"])
    assert ((ready[..., 0] > 200) & (ready[..., 1] < 110)).sum() == 0

    # The Move button went to the daemon.
    snapshot = lab_snapshot(daemon.socket)
    assert abs(float(snapshot["position"]) - 1.5) < 0.01
    assert snapshot["states"]["oven"] == "faulted"

    # Paused: the status line says so (in the paused colour).
    pixels, layout = load_shot(paused)
    text = region(pixels, *layout["rects"]["timetravel.text"])
    assert ((text[..., 0] > 200) & (text[..., 1] > 120) & (text[..., 2] < 100)).sum() > 20


def test_sigkill_of_the_gui_leaves_the_daemon_acquiring(
    display: str, daemon: Daemon, tmp_path: Path
) -> None:
    shot = tmp_path / "up"
    gui = Gui(
        display,
        daemon.socket,
        tmp_path,
        [
            {"wait_connected": True},
            {"wait_frames": "camera.camera", "count": 2},
            {"screenshot": str(shot)},
            {"sleep": 120},
        ],
    )
    wait_for(Path(f"{shot}.png"))
    before = lab_snapshot(daemon.socket)
    os.kill(gui.process.pid, signal.SIGKILL)
    gui.process.wait(10)
    time.sleep(1.0)
    after = lab_snapshot(daemon.socket)
    assert daemon.process is not None and daemon.process.poll() is None
    for stream in ("camera/frames", "meter/reading", "stage/position"):
        assert after["seqs"][stream] > before["seqs"][stream], stream
    assert after["states"]["camera"] in ("ready", "busy")


def test_losing_the_daemon_shows_and_reconnects(
    display: str, daemon: Daemon, tmp_path: Path
) -> None:
    up, down, back = tmp_path / "up", tmp_path / "down", tmp_path / "back"
    gui = Gui(
        display,
        daemon.socket,
        tmp_path,
        [
            {"wait_connected": True},
            {"screenshot": str(up)},
            {"wait_disconnected": True},
            {"wait_text": "stage.state", "contains": "daemon disconnected"},
            {"screenshot": str(down)},
            {"wait_connected": True, "timeout": 60},
            {"wait_text": "connection", "contains": "connected |"},
            {"wait_frames": "camera.camera", "count": 2},
            {"screenshot": str(back)},
            {"quit": True},
        ],
    )
    wait_for(Path(f"{up}.png"))
    daemon.stop()
    wait_for(Path(f"{down}.png"))
    pixels, layout = load_shot(down)
    status = region(pixels, *layout["rects"]["connection"])
    assert ((status[..., 0] > 200) & (status[..., 1] < 110)).sum() > 20  # red: disconnected
    daemon.start()
    gui.wait()
    pixels, layout = load_shot(back)
    status = region(pixels, *layout["rects"]["connection"])
    assert ((status[..., 1] > 180) & (status[..., 0] < 120)).sum() > 20  # green: connected


def test_sim_starts_a_lab_and_stops_it(display: str, tmp_path: Path) -> None:
    actions = tmp_path / "a.json"
    actions.write_text(
        '[{"wait_connected": true}, {"wait_frames": "camera.camera"}, {"quit": true}]'
    )
    out = subprocess.run(
        [sys.executable, "-m", "labd", "gui", "--sim", "--script-actions", str(actions)],
        env=dict(os.environ, DISPLAY=display),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "shutting down" in out.stderr  # the simulated lab was stopped with the GUI
