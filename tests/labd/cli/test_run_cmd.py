"""``labd run`` (labd/cli/run_cmd.py) as a user runs it, against a real ``labd serve``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labd.client import connect_blocking
from tests.labd.rpc.conftest import REPO, LabdProcess, start_labd
from tests.labd.rpc.test_scripts import SPIN, TICKER

SCAN = REPO / "wasm_scripts" / "examples" / "wat" / "scan.wat"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    process = start_labd(tmp_path_factory.mktemp("labd"))
    yield process
    process.stop()


def labd_run(daemon: LabdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labd", "run", *args, "--connect", daemon.address],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip


def test_scan_prints_the_peak(daemon: LabdProcess) -> None:
    done = labd_run(
        daemon, str(SCAN), "--grant", "stage", "--grant", "meter", "--grant", "camera",
        "--arg", "steps=21",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if "peak_position" in line]
    assert float(row.split("│")[2]) == pytest.approx(3.0, abs=0.11)
    assert "succeeded" in done.stdout
    # The same file again is not uploaded as a new version.
    again = labd_run(daemon, str(SCAN), "--grant", "*", "--arg", "steps=3")
    assert again.returncode == 0, again.stderr
    assert "'scan' v1 is this module already" in again.stdout


def test_failures_exit_non_zero_with_the_code(daemon: LabdProcess, tmp_path: Path) -> None:
    spin = tmp_path / "spin.wat"
    spin.write_text(SPIN)
    out_of_fuel = labd_run(daemon, str(spin), "--fuel", "1e5")
    assert out_of_fuel.returncode == 1
    message = " ".join(out_of_fuel.stderr.split())
    assert "failed: out-of-fuel: script 'spin' v1 ran out of fuel" in message
    assert "--fuel" in message and message.count("failed") == 1

    denied = labd_run(daemon, str(SCAN), "--grant", "stage", "--grant", "meter")
    assert denied.returncode == 1
    assert "failed: denied:" in denied.stderr and "--grant camera" in denied.stderr

    bad = tmp_path / "bad.wat"
    bad.write_text("(module (func")
    refused = labd_run(daemon, str(bad))
    assert refused.returncode == 2 and "bad.wat" in refused.stderr
    assert labd_run(daemon, str(tmp_path / "x.py")).returncode == 2
    usage = labd_run(daemon, str(SCAN), "--arg", "steps")
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr


def test_ctrl_c_cancels_the_run_on_the_daemon(daemon: LabdProcess, tmp_path: Path) -> None:
    ticker = tmp_path / "ticker.wat"
    ticker.write_text(TICKER)
    process = subprocess.Popen(
        [sys.executable, "-m", "labd", "run", str(ticker), "--arg", "ms=50",
         "--connect", daemon.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # live log lines reach the terminal while it runs
        if line.rstrip().endswith("info  tick"):
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "cancelled on the daemon" in stderr
    with connect_blocking(daemon.address) as lab:
        deadline = time.monotonic() + 5
        while True:
            (run,) = [r for r in lab.scripts().runs() if r.name == "ticker"]
            if run.finished or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (run.state, run.error_code) == ("cancelled", "cancelled")
