"""`labd demo`: a daemon subprocess, driven over RPC, finds the simulated beam's peak."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.timeout(180)
def test_demo_scans_over_rpc_and_finds_the_peak() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labd", "demo", "--steps", "13"],
        capture_output=True,
        text=True,
        timeout=170,
        env={
            "COLUMNS": "120",
            "PATH": "/usr/bin:/bin",
            "XDG_DATA_HOME": os.environ["XDG_DATA_HOME"],
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "daemon ready at" in out
    match = re.search(r"peak: ([\d.e-]+) W at ([+-][\d.]+) mm", out)
    assert match, out
    # default_lab.toml's meter sees a Gaussian beam centred on 3 mm; 13 points over 0–6 mm
    # land exactly on it.
    assert float(match.group(2)) == pytest.approx(3.0, abs=0.01)
    assert float(match.group(1)) > 1e-4
    # The supply heats the thermometer's sample: the sweep ends warmer than it started.
    temps = [float(t) for t in re.findall(r"│\s+[\d.]+ │\s+(\d{3}\.\d{3}) │", out)]
    assert len(temps) == 4 and temps[-1] > temps[0] + 1.0, out
