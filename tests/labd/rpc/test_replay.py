"""Replay over RPC (labd/rpc/replay.py, labd/client/replay.py) against a real ``labd serve``.

The daemon's rings hold about one second, so after a few seconds the oldest batches are
only in the ``.arrows`` files and the newest only (or also) in the ring: a replay of the
whole run must cross that boundary without a gap or a duplicate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from labd import aio, records
from labd.client import connect, connect_blocking
from labd.errors import UnknownStream
from labd.rings import attach, persisted_files, read_stream_file
from tests.labd.rpc.conftest import LabdProcess, start_labd

TINY_RINGS = """
[daemon]
data_dir = "data"
retention_s = 1
ring_memory_mb = 16

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
sensor_width = 64
sensor_height = 64
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabdProcess]:
    process = start_labd(tmp_path_factory.mktemp("replay"), config=TINY_RINGS)
    yield process
    process.stop()
    assert process.proc.returncode == 0, process.log.read_text()


def wait_for_wrap(daemon: LabdProcess, stream: str, laps: int = 2) -> tuple[int, int]:
    """Wait until ``stream``'s ring went round ``laps`` times: (ring capacity, newest seq)."""
    with connect_blocking(daemon.address) as lab:
        info = lab.data_info()
    ring_info = next(r for r in info.rings if r.stream == stream)
    with attach(stream, daemon=info.daemon_id) as ring:
        deadline = time.monotonic() + 20
        while ring.write_seq <= laps * ring.capacity:
            assert time.monotonic() < deadline, f"{stream} did not wrap its ring"
            time.sleep(0.05)
        return ring_info.capacity, ring.write_seq


def replay_pairs(
    daemon: LabdProcess, stream: str, start: float, end: float, chunk_bytes: int
) -> list[tuple[int, pa.RecordBatch]]:
    async def main() -> list[tuple[int, pa.RecordBatch]]:
        async with (
            connect(daemon.address) as lab,
            lab.replay_batches(stream, start, end, chunk_bytes=chunk_bytes) as batches,
        ):
            return [pair async for pair in batches]

    return aio.run(main)


def on_disk(directory: Path) -> dict[int, pa.RecordBatch]:
    return {seq: b for path in persisted_files(directory) for seq, b in read_stream_file(path)}


def test_replay_crosses_from_files_into_the_ring(daemon: LabdProcess) -> None:
    capacity, newest = wait_for_wrap(daemon, "camera/frames")

    # Small chunks: many pulls, several in flight; 64x64 frames are 8 KiB each.
    pairs = replay_pairs(daemon, "camera/frames", 0.0, math.inf, chunk_bytes=64 << 10)

    seqs = [seq for seq, _ in pairs]
    assert seqs == list(range(1, len(seqs) + 1)), "every batch once, in order, from the first"
    assert len(seqs) >= newest > 2 * capacity, "the oldest came from the files"
    with connect_blocking(daemon.address) as lab:
        info = lab.data_info()
    files = on_disk(next(p.directory for p in info.persisted if p.stream == "camera/frames"))
    # The batches lie in the received messages (no copy): they must outlive the connection.
    for seq, batch in pairs:
        if seq in files:
            assert batch.equals(files[seq]), f"batch {seq} differs from the file"
    frame = records.frame_from_batch(pairs[-1][1])
    assert frame.data.shape == (64, 64) and frame.seq > 0


def test_blocking_replay_returns_a_table_of_the_range(daemon: LabdProcess) -> None:
    wait_for_wrap(daemon, "meter/reading")
    end = time.time() - 0.5
    start = end - 2.0
    with connect_blocking(daemon.address) as lab:
        table = lab.replay("meter/reading", start, end)
    assert table.schema.equals(records.READING_SCHEMA)
    t = table.column("timestamp").to_numpy()
    # Whole batches whose time span overlaps the range: about 2 s of 50 Hz readings.
    assert 80 <= table.num_rows <= 160
    assert t.min() <= start + 0.5 and t.max() >= end - 0.5
    assert (t[1:] >= t[:-1]).all(), "in time order"
    assert set(table.column("unit").to_pylist()) == {"W"}


def test_a_range_without_data_is_an_empty_table_with_the_schema(daemon: LabdProcess) -> None:
    with connect_blocking(daemon.address) as lab:
        table = lab.replay("camera/frames", 1000.0, 2000.0)  # 1970
    assert table.num_rows == 0
    assert table.schema.equals(records.FRAME_SCHEMA)


def test_an_unknown_stream_is_a_typed_error(daemon: LabdProcess) -> None:
    with connect_blocking(daemon.address) as lab, pytest.raises(UnknownStream, match="known:"):
        lab.replay("meter/nothing", 0.0, time.time())
