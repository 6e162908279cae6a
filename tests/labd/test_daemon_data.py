"""The daemon's recorded data, end to end: a real ``labd serve`` writing its rings to
/dev/shm and its files to a data directory, read by this (separate) process, killed,
restarted, stopped cleanly, and pointed at a directory it cannot write."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from labd import records
from labd.client import connect_blocking
from labd.client.replay import DataInfo
from labd.rings import RingReader, attach, persisted_files, read_stream_file
from tests.labd.rpc.conftest import REPO, LabdProcess, start_labd

LAB = """
[daemon]
data_dir = "{data_dir}"
retention_s = 30
ring_memory_mb = 32

[instruments.stage]
driver = "sim.stage"
poll_hz = 20

[instruments.meter]
driver = "sim.power_meter"
stage = "stage"
poll_hz = 50

[instruments.camera]
driver = "sim.camera"
stage = "stage"
frame_fps = 20
sensor_width = 96
sensor_height = 64
"""


def data_info(daemon: LabdProcess) -> DataInfo:
    with connect_blocking(daemon.address) as lab:
        return lab.data_info()


def wait_for(ring: RingReader, seq: int) -> None:
    deadline = time.monotonic() + 20
    while ring.write_seq < seq:
        assert time.monotonic() < deadline, f"{ring.stream} stuck at batch {ring.write_seq}"
        time.sleep(0.02)


def file_batches(directory: Path) -> list[tuple[int, pa.RecordBatch]]:
    return [pair for path in persisted_files(directory) for pair in read_stream_file(path)]


def plain_pyarrow_seqs(path: Path) -> list[int]:
    """What pyarrow alone makes of a file cut by a crash: every batch up to the cut."""
    seqs = []
    reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    try:
        while True:
            _, metadata = reader.read_next_batch_with_custom_metadata()
            seqs.append(int(metadata[b"labd.seq"]))
    except (StopIteration, OSError, pa.ArrowInvalid):
        return seqs


def test_rings_files_crash_restart_and_shutdown(tmp_path: Path) -> None:
    config = LAB.format(data_dir=tmp_path / "data")
    daemon = start_labd(tmp_path, config=config)
    try:
        info = data_info(daemon)
        assert info.same_host and info.daemon_id.startswith("sock-")
        assert info.data_dir == tmp_path / "data" and info.run_id

        # A local process maps the daemon's rings: readings, and a frame without a copy.
        with attach("meter/reading", daemon=info.daemon_id) as meter:
            wait_for(meter, 3)
            latest = meter.latest()
            assert latest is not None
            with latest:
                readings = records.readings_from_batch(latest.batch)
            assert readings and all(r.unit == "W" for r in readings)
        camera = attach("camera/frames", daemon=info.daemon_id)
        wait_for(camera, 30)
        with camera.latest() as b:  # type: ignore[union-attr]
            frame = b.frame()
            assert frame.data.shape == (64, 96)
            assert not frame.data.flags.owndata, "a view into the shared mapping"
            assert frame.data.std() > 0

        # SIGKILL while frames and files are being written.
        before_kill = {b.seq: b.copy() for b in camera.between(-math.inf, math.inf)}
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(5)
        camera.close()

        directory = next(p.directory for p in info.persisted if p.stream == "camera/frames")
        on_disk = file_batches(directory)
        seqs = [seq for seq, _ in on_disk]
        assert seqs == list(range(1, len(seqs) + 1)), "no batch lost or doubled on disk"
        assert len(seqs) >= max(before_kill) - 5, "the disk was at most a few frames behind"
        assert min(before_kill) == 1, "the ring still held the whole run"
        for seq, batch in on_disk:
            if seq in before_kill:
                assert batch.equals(before_kill[seq]), f"frame {seq} on disk differs"
        assert plain_pyarrow_seqs(persisted_files(directory)[-1]) == seqs
        killed_ring = Path(info.ring_root or "") / info.daemon_id
        assert any(killed_ring.glob("*.ring")), "a killed daemon cannot clean up its rings"

        # Restart: the stale rings go, the new run writes to a new directory.
        daemon = start_labd(tmp_path, config=config)
        restarted = data_info(daemon)
        assert restarted.daemon_id == info.daemon_id
        assert restarted.run_id != info.run_id
        for ring_info in restarted.rings:
            with RingReader(ring_info.path) as ring:
                assert ring.writer_pid == daemon.proc.pid
        assert file_batches(directory) == on_disk, "the old run's files are left alone"
        new_directory = next(
            p.directory for p in restarted.persisted if p.stream == "meter/reading"
        )
        deadline = time.monotonic() + 10
        while not file_batches(new_directory):
            assert time.monotonic() < deadline, "the restarted daemon persists nothing"
            time.sleep(0.05)
        assert new_directory == tmp_path / "data" / "meter" / "reading" / restarted.run_id

        # A clean shutdown finishes the files and removes the rings.
        daemon.stop()
        assert daemon.proc.returncode == 0
        assert not any(killed_ring.glob("*.ring"))
        last_file = persisted_files(new_directory)[-1]
        assert last_file.suffix == ".parquet", "finalized when the daemon stopped"
    finally:
        daemon.stop()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real disk that fills up within a second of camera frames."""
    disk = tmp_path / "tiny-disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_reported_and_acquisition_goes_on(tmp_path: Path, tiny_disk: Path) -> None:
    daemon = start_labd(tmp_path, config=LAB.format(data_dir=tiny_disk / "data"))
    try:
        deadline = time.monotonic() + 15
        while not any(p.error for p in data_info(daemon).persisted):
            assert time.monotonic() < deadline, "the disk error is not reported"
            time.sleep(0.1)
        info = data_info(daemon)
        failed = next(p for p in info.persisted if p.error)
        assert failed.error is not None and "cannot persist" in failed.error
        assert "No space left on device" in failed.error

        # The daemon goes on acquiring; the ring keeps the data.
        with attach("meter/reading", daemon=info.daemon_id) as ring:
            seq = ring.write_seq
            wait_for(ring, seq + 5)
        with connect_blocking(daemon.address) as lab:
            table = lab.replay("meter/reading", time.time() - 1, time.time())
        assert table.num_rows > 10 and np.isfinite(table.column("value").to_numpy()).all()

        # ... and says so on the command line and in its log.
        out = subprocess.run(
            [sys.executable, "-m", "labd", "data", "--connect", daemon.address],
            capture_output=True, text=True, timeout=30, cwd=REPO,
        )  # fmt: skip
        assert out.returncode == 1, out.stderr
        assert f"{failed.stream}: cannot persist" in out.stdout
        assert "cannot persist" in daemon.log.read_text()
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0
