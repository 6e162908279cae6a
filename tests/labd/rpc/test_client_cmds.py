"""The ``labd`` client subcommands (labd/cli/client_cmds.py) against a real daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from labd import records
from tests.labd.rpc.conftest import REPO, LabdProcess


def labd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labd", *args], capture_output=True, text=True, cwd=REPO,
        timeout=60,
    )  # fmt: skip


def test_ls_move_snap_share(labd_daemon: LabdProcess, tmp_path: Path) -> None:
    at = ["--connect", labd_daemon.address]
    listing = labd("ls", *at)
    assert listing.returncode == 0, listing.stderr
    assert "sim.stage" in listing.stdout and "Movable" in listing.stdout
    moved = labd("move", "stage", "1.5", *at)
    assert moved.returncode == 0, moved.stderr
    assert abs(float(moved.stdout.split()[0]) - 1.5) < 0.01
    out = tmp_path / "frame.arrow"
    assert labd("snap", "camera", "-o", str(out), *at).returncode == 0
    assert records.frame_from_batch(records.batch_from_ipc(out.read_bytes())).data.ndim == 2
    token = labd("share", "stage", "--read-only", *at).stdout.strip()
    assert token.startswith("share-")
    assert labd("share", "--revoke", token, *at).returncode == 0
    refused = labd("move", "nosuch", "1", *at)
    assert refused.returncode == 1 and "UnknownInstrument" in refused.stderr


def test_no_daemon_message() -> None:
    result = labd("ls", "--connect", "/nonexistent/labd.sock")
    assert result.returncode == 3
    assert "no labd daemon at /nonexistent/labd.sock" in result.stderr
    assert "labd serve" in result.stderr
