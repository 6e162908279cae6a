"""`labd serve` as a real process: clean shutdown on SIGTERM and SIGINT closes every driver."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest


def start_daemon() -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "labd", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if "labd: ready" in line:
            return proc
        assert time.monotonic() < deadline, "daemon did not get ready"
    raise AssertionError(f"daemon exited early with {proc.wait()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_and_closes_every_driver(sig: signal.Signals) -> None:
    proc = start_daemon()
    time.sleep(0.5)  # let acquisition run
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"{sig.name}: shutting down" in out
    for name in ("stage", "meter", "camera", "thermo", "psu"):
        assert f"{name}: stopped" in out, out
