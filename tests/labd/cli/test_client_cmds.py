"""The ``labd`` client subcommands (labd/cli/client_cmds.py) against a real daemon.

Every failure a user can cause prints one line and exits with the status that says whose
fault it was (labd/cli/connection.py): 1 refused, 2 a wrong argument, 3 no daemon.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labd import records
from labd.launcher import DaemonProcess, spawn_daemon


@pytest.fixture(scope="module")
def lab() -> Iterator[DaemonProcess]:
    with spawn_daemon() as daemon:
        yield daemon


def labd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labd", *args], capture_output=True, text=True, timeout=60
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_ls_move_snap_share(lab: DaemonProcess, tmp_path: Path) -> None:
    at = ["--connect", lab.address]
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


def test_refusals_exit_1_with_the_reason(lab: DaemonProcess) -> None:
    at = ["--connect", lab.address]
    unknown = labd("move", "nosuch", "1", *at)
    assert unknown.returncode == 1
    assert "UnknownInstrument" in one_line_error(unknown)
    wrong_capability = labd("read", "stage", *at)
    assert wrong_capability.returncode == 1
    assert "stage is not Readable" in one_line_error(wrong_capability)
    out_of_range = labd("move", "stage", "1000", *at)
    assert out_of_range.returncode == 1
    assert "OutOfRange" in one_line_error(out_of_range)


def test_unwritable_output_is_a_usage_error(lab: DaemonProcess, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "frame.arrow"
    result = labd("snap", "camera", "-o", str(target), "--connect", lab.address)
    assert result.returncode == 2
    assert f"cannot write {target}" in one_line_error(result)


def test_no_daemon_message() -> None:
    result = labd("ls", "--connect", "/nonexistent/labd.sock")
    assert result.returncode == 3
    line = one_line_error(result)
    assert "no labd daemon at /nonexistent/labd.sock" in line
    assert "labd serve" in line


def test_a_lab_token_is_always_a_valid_token_argument(tmp_path: Path) -> None:
    # A token that began with "-" (one in 32 of urlsafe base64) was taken by argparse for
    # an option: ``labd ls --token -x...`` failed with "expected one argument".
    from labd.contract.address import write_token

    for _ in range(200):
        assert not write_token(tmp_path / "labd.token").startswith("-")
