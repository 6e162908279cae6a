"""`labd serve` as a real process: clean shutdown on SIGTERM and SIGINT closes every driver."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def test_a_bad_config_is_one_line_and_status_2(tmp_path: Path) -> None:
    config = tmp_path / "lab.toml"
    config.write_text('[instruments.stage]\ndriver = "sim.stag"\n')
    result = subprocess.run(
        [sys.executable, "-m", "labd", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"labd: {config}:2: instruments.stage.driver: unknown driver")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_daemon_that_cannot_start_says_why_without_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "labd", "serve", "--socket", str(tmp_path / "labd.sock"),
             "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "labd serve: [Errno 98] Address already in use" in result.stderr, result.stderr


def test_a_listen_that_is_not_host_port_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labd", "serve", "--socket", str(tmp_path / "labd.sock"),
         "--listen", "not-a-host-port"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    assert "labd serve: --listen not-a-host-port" in result.stderr, result.stderr
