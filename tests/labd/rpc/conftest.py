"""A real ``labd serve`` daemon in a subprocess, reachable over a real unix socket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

LAB_TOML = """
[instruments.stage]
driver = "sim.stage"
poll_hz = 20
velocity = 2.0          # mm/s: slow enough that a long move can be cancelled mid-way

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 50

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 10
"""


@dataclass
class LabdProcess:
    proc: subprocess.Popen[bytes]
    socket: Path
    token_path: Path
    log: Path

    @property
    def address(self) -> str:
        return str(self.socket)

    @property
    def token(self) -> str:
        return self.token_path.read_text().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_labd(tmp: Path, *extra: str, config: str = LAB_TOML) -> LabdProcess:
    """Start ``python -m labd serve`` and wait until its socket and token file exist."""
    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / "lab.toml"
    config_path.write_text(config)
    sock = tmp / "run" / "labd.sock"
    log = tmp / "labd.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labd", "serve", "--config", str(config_path),
             "--socket", str(sock), *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
    return wait_until_ready(proc, sock, log)


def wait_until_ready(proc: subprocess.Popen[bytes], sock: Path, log: Path) -> LabdProcess:
    """The daemon ``proc`` (socket ``sock``, output in ``log``) once it says it is ready;
    stops it and raises with its log if it exits or takes more than 30 s."""
    daemon = LabdProcess(proc, sock, sock.with_suffix(".token"), log)
    deadline = time.monotonic() + 30
    while not (sock.exists() and daemon.token_path.exists() and b"labd: ready" in log.read_bytes()):
        if proc.poll() is not None or time.monotonic() > deadline:
            daemon.stop()
            raise RuntimeError(f"labd serve did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return daemon


@pytest.fixture(scope="module")
def labd_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    daemon = start_labd(tmp_path_factory.mktemp("labd"))
    yield daemon
    daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()
