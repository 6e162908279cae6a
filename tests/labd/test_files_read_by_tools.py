"""The files a real ``labd serve`` persists, read directly by the tools analysts use:
DuckDB, pandas, lazy polars, pyarrow datasets and Dask -- after a clean stop, and after a
SIGKILL whose open segments the next start finalizes (read while that daemon runs)."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import dask.dataframe as dd
import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from labd.client import connect_blocking
from labd.client.replay import DataInfo
from labd.rings import RingReader, attach, persisted_files, read_stream_file, replay
from labd.rings.files import seconds_to_ns, stream_directory
from tests.labd.rpc.conftest import LabdProcess, start_labd
from tests.labd.test_daemon_data import LAB as DAEMON_DATA_LAB

# The same small lab as the rings-and-files test: fast, with frames of 96x64 pixels.
LAB = DAEMON_DATA_LAB


def record(daemon: LabdProcess, frames: int = 40) -> DataInfo:
    """Let the simulated lab record (two seconds of frames at least); its data info."""
    with connect_blocking(daemon.address) as lab:
        info = lab.data_info()
    with attach("camera/frames", daemon=info.daemon_id) as camera:
        deadline = time.monotonic() + 30
        while camera.write_seq < frames:
            assert time.monotonic() < deadline, f"camera stuck at frame {camera.write_seq}"
            time.sleep(0.05)
    return info


def replayed(data: Path, run_id: str, stream: str) -> pa.Table:
    """What replay gives of one run's files: the batches as the ring had them."""
    directory = stream_directory(data, run_id, stream)
    batches = [b for _, b in replay(-math.inf, math.inf, directory=directory)]
    assert batches, f"nothing persisted for {stream} in {directory}"
    return pa.Table.from_batches(batches)


def check_metadata(path: Path, schema: pa.Schema, info: DataInfo, stream: str, kind: str) -> None:
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    assert meta["labd.stream"] == stream and meta["labd.kind"] == kind, path
    assert meta["labd.run_id"] == info.run_id and meta["labd.daemon_id"] == info.daemon_id
    assert meta["labd.version"], path


def read_with_every_tool(data: Path, runs: list[str], info: DataInfo) -> None:
    """Every tool sees the rows replay gives, with UTC timestamps, and the metadata."""
    readings = pa.concat_tables(replayed(data, run, "meter/reading") for run in runs)
    frames = pa.concat_tables(replayed(data, run, "camera/frames") for run in runs)
    first_ns = seconds_to_ns(readings.column("timestamp")).cast(pa.int64()).to_numpy().min()
    meter_dir = data / "meter" / "reading"
    meter_glob = f"{meter_dir}/**/*.parquet"
    camera_dir = data / "camera" / "frames"
    camera_glob = f"{camera_dir}/**/*.arrow"

    # DuckDB: Parquet directly; frames (Arrow IPC files) through a pyarrow dataset.
    ((count, first),) = duckdb.sql(
        f"select count(*), min(timestamp) from read_parquet('{meter_glob}')"
    ).fetchall()
    assert count == readings.num_rows
    assert first.utcoffset() is not None and first.utcoffset().total_seconds() == 0
    assert abs(first.timestamp() - first_ns / 1e9) < 1e-6  # DuckDB keeps microseconds
    units = duckdb.sql(f"select distinct unit from read_parquet('{meter_glob}')").fetchall()
    assert units == [("W",)]
    camera_dataset = ds.dataset(camera_dir, format="ipc")
    assert duckdb.sql("select count(*) from camera_dataset").fetchall() == [(frames.num_rows,)]

    # pandas
    table = pd.read_parquet(meter_dir)
    assert len(table) == readings.num_rows
    assert str(table["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert table["timestamp"].min().value == first_ns
    frame_files = sorted(camera_dir.glob("*/*.arrow"))
    images = pd.concat([pd.read_feather(path) for path in frame_files])
    assert len(images) == frames.num_rows
    assert str(images["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert (images["height"] == 64).all() and (images["width"] == 96).all()
    assert images["pixels"].map(len).eq(64 * 96 * 2).all()

    # polars, lazily, with globs
    lazy_readings = pl.scan_parquet(meter_glob)
    assert lazy_readings.collect_schema()["timestamp"] == pl.Datetime("ns", "UTC")
    got = lazy_readings.select(pl.len(), pl.col("timestamp").min().cast(pl.Int64)).collect()
    assert got.row(0) == (readings.num_rows, first_ns)
    lazy_frames = pl.scan_ipc(camera_glob)
    assert lazy_frames.select(pl.len()).collect().item() == frames.num_rows
    assert lazy_frames.collect_schema()["timestamp"] == pl.Datetime("ns", "UTC")

    # pyarrow datasets: the directories as one table, metadata in the schema
    dataset = ds.dataset(meter_dir, format="parquet")
    assert dataset.count_rows() == readings.num_rows
    for path in dataset.files:
        check_metadata(Path(path), pq.read_schema(path), info, "meter/reading", "readings")
        if path.split("/")[-2] == info.run_id:
            assert pq.read_schema(path).field("value").metadata == {b"unit": b"W"}
    assert dataset.schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert camera_dataset.count_rows() == frames.num_rows
    for path in camera_dataset.files:
        check_metadata(Path(path), pa.ipc.open_file(path).schema, info, "camera/frames", "frames")

    # Dask
    lazy = dd.read_parquet(str(meter_dir))
    assert len(lazy) == readings.num_rows
    assert str(lazy["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert lazy["value"].sum().compute() == np.float64(readings.column("value").to_numpy().sum())


def test_files_after_a_clean_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    daemon = start_labd(tmp_path, config=LAB.format(data_dir=data))
    try:
        info = record(daemon)
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log.read_text()
    for stream in ("meter/reading", "camera/frames"):
        files = persisted_files(stream_directory(data, info.run_id, stream))
        assert files and not any(f.suffix == ".arrows" for f in files), "all finalized"
    assert not list(data.rglob(".*")), "no temporary file is left"
    read_with_every_tool(data, [info.run_id], info)


def test_files_of_a_killed_daemon_after_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = LAB.format(data_dir=data)
    daemon = start_labd(tmp_path, config=config)
    try:
        killed = record(daemon)
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(5)
        on_disk = {}
        for stream in ("meter/reading", "camera/frames"):
            (segment,) = persisted_files(stream_directory(data, killed.run_id, stream))
            assert segment.name == "_part-000001.arrows", "left open by the kill"
            on_disk[stream] = list(read_stream_file(segment))  # to its last complete batch

        daemon = start_labd(tmp_path, config=config)
        restarted = record(daemon, frames=5)
        assert restarted.run_id != killed.run_id
        deadline = time.monotonic() + 20
        killed_dirs = [stream_directory(data, killed.run_id, stream) for stream in on_disk]
        while any(list(directory.glob("_part-*")) for directory in killed_dirs):
            assert time.monotonic() < deadline, "the killed run's segments are not finalized"
            time.sleep(0.1)
        for stream, batches in on_disk.items():
            (recovered,) = persisted_files(stream_directory(data, killed.run_id, stream))
            assert recovered.suffix in (".parquet", ".arrow")
            assert list(read_stream_file(recovered)) == batches, "every complete batch, once"
        # The new run writes its live segments beside them; the tools skip those.
        with RingReader(attach("meter/reading", daemon=restarted.daemon_id).path) as ring:
            assert ring.writer_pid == daemon.proc.pid
        live = persisted_files(stream_directory(data, restarted.run_id, "meter/reading"))
        assert [f.suffix for f in live] == [".arrows"]
        read_with_every_tool(data, [killed.run_id], killed)
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0
