"""Fixtures for GUI tests: a real X server (Xvfb), a real daemon, the real GUI process.

One Xvfb serves the whole session (``-displayfd`` picks a free display); each test starts
``labd serve`` on a private socket and runs ``labd gui --script-actions`` against it, so
the GUI's pid is ours to SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SCREEN = "1600x1000x24"

# A lab like the built-in one plus an oven that breaks on its second call and, with no
# restarts allowed, stays faulted: what a panel must show.
TEST_LAB = """
[restart]
max_restarts = 0

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

[instruments.psu]
driver = "sim.power_supply"

[instruments.oven]
driver = "sim.thermometer"
name = "oven"
fail_after_calls = 2
poll_hz = 5
"""


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is not installed: apt-get install xvfb xauth libgl1-mesa-dri")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", SCREEN, "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        xvfb.kill()
        pytest.fail("Xvfb did not report a display number")
    yield f":{number}"
    xvfb.terminate()
    xvfb.wait(5)


class Daemon:
    def __init__(self, tmp: Path, lab: str = TEST_LAB) -> None:
        self.socket = tmp / "labd.sock"
        self.config = tmp / "lab.toml"
        self.config.write_text(lab)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        token = self.socket.with_suffix(".token")
        if token.exists():
            token.unlink()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labd",
                "serve",
                "-c",
                str(self.config),
                "--socket",
                str(self.socket),
            ],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not token.exists():
            assert self.process.poll() is None, "labd serve exited"
            assert time.monotonic() < deadline, "labd serve did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    d.start()
    yield d
    d.stop()


class Gui:
    """One ``labd gui`` process driven by an actions file."""

    def __init__(
        self, display: str, address: Path, tmp: Path, steps: list[dict[str, object]]
    ) -> None:
        self.actions = tmp / "actions.json"
        self.actions.write_text(json.dumps(steps))
        self.result = tmp / "actions.json.result.json"
        env = dict(os.environ, DISPLAY=display)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labd",
                "gui",
                "--connect",
                str(address),
                "--script-actions",
                str(self.actions),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float = 60) -> dict[str, object]:
        try:
            output, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
            pytest.fail(f"the GUI did not finish in {timeout} s:\n{output.decode()[-3000:]}")
        assert self.result.exists(), f"no result file; GUI output:\n{output.decode()[-3000:]}"
        result: dict[str, object] = json.loads(self.result.read_text())
        assert result["ok"], f"{result['error']}\nGUI output:\n{output.decode()[-3000:]}"
        assert self.process.returncode == 0
        return result


def load_shot(base: Path) -> tuple[np.ndarray, dict[str, object]]:
    """The RGBA pixels of a screenshot and its layout (see gui.actions)."""
    assert base.with_suffix(".png").stat().st_size > 0
    return np.load(f"{base}.npy"), json.loads(Path(f"{base}.json").read_text())


_SNAPSHOT = """
import json, sys
from capabilities import Movable
from labd.client import connect_blocking
with connect_blocking(sys.argv[1]) as lab:
    print(json.dumps({
        "states": {i.name: i.state for i in lab.instruments()},
        "seqs": {s.name: s.last_seq for s in lab.streams()},
        "position": lab.instrument("stage").get(Movable).position().value,
    }))
"""


def lab_snapshot(socket: Path) -> dict[str, object]:
    """The daemon's view, asked by a separate client process (not the GUI)."""
    out = subprocess.run(
        [sys.executable, "-c", _SNAPSHOT, str(socket)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def wait_for(png: Path, timeout: float = 60) -> None:
    """Until the screenshot ``png`` and the files saved beside it can all be read."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            load_shot(png.with_suffix(""))
            return
        except (OSError, ValueError, EOFError, AssertionError):  # not there, or half written
            assert time.monotonic() < deadline, f"{png} and its .npy/.json never appeared"
            time.sleep(0.1)
