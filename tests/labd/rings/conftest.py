from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def ring_root() -> Iterator[Path]:
    """A fresh root for rings in /dev/shm (real shared memory), removed afterwards."""
    root = Path("/dev/shm") / f"labd-test-{uuid.uuid4().hex[:12]}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


def start_writer(*args: object) -> subprocess.Popen[str]:
    """Start tests/labd/rings/writer_process.py and wait until its rings exist."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.labd.rings.writer_process", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"writer process did not start: {line!r}"
    return proc


def wait_for_output(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == text:
            return
    raise AssertionError(f"writer process ended before printing {text!r}")
