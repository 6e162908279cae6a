"""Closed segments become Parquet / Arrow IPC files that give back exactly what the ring had."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labd.records import FRAME_SCHEMA, READING_SCHEMA, frame_from_batch
from labd.rings import (
    Persister,
    RingReader,
    RingSet,
    closed_files,
    finalize_all,
    finalize_segment,
    persisted_files,
    read_stream_file,
    replay,
)
from labd.rings.files import ns_to_seconds, seconds_to_ns
from labd.rings.finalize import Finalizer, segment_metadata
from labd.rings.layout import SEQ_METADATA_KEY
from labd.rings.writer import RingWriter
from tests.labd.rings.batches import T0, check_reading_batch, frame_batch, reading_batch


def readings_ring(rings: RingSet, retention_s: float = 10) -> RingWriter:
    return rings.open_stream(
        "meter/reading",
        READING_SCHEMA,
        "readings",
        expected_batch_bytes=1700,
        batches_per_second=100,
        retention_s=retention_s,
    )


def frames_ring(rings: RingSet) -> RingWriter:
    return rings.open_stream(
        "camera/frames",
        FRAME_SCHEMA,
        "frames",
        expected_batch_bytes=64 * 64 * 2 + 4096,
        batches_per_second=100,
        retention_s=10,
    )


def write_segment(path: Path, batches: list[tuple[int, pa.RecordBatch]], *, cut: int = 0) -> None:
    """A live segment as a daemon leaves it (``cut`` bytes short: killed mid-batch)."""
    schema = batches[0][1].schema.with_metadata(
        segment_metadata("meter/reading", "run0", "lab", "readings")
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for seq, batch in batches:
            writer.write_batch(batch, custom_metadata={SEQ_METADATA_KEY: str(seq)})
    data = sink.getvalue().to_pybytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) - 8 - cut])  # no end-of-stream marker: a crash


def test_timestamps_come_back_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    seconds = np.concatenate(
        [T0 + rng.uniform(0, 1e8, 100_000), [2**23 + 0.123456789, 4e9 + 1 / 3, 1.7e9]]
    )
    stamps = seconds_to_ns(pa.array(seconds))
    assert stamps.type == pa.timestamp("ns", tz="UTC")
    back = ns_to_seconds(stamps).to_numpy()
    assert np.array_equal(back.view(np.int64), seconds.view(np.int64))
    assert stamps[-3].as_py().isoformat().startswith("1970-04-08")
    # Not a time: null, both ways.
    odd = seconds_to_ns(pa.array([np.nan, None, np.inf, T0], pa.float64()))
    assert odd.null_count == 3 and ns_to_seconds(odd).to_pylist()[:3] == [None] * 3


def test_a_readings_segment_becomes_parquet_with_metadata(ring_root: Path, tmp_path: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = readings_ring(rings)
        with Persister(tmp_path, "run1") as persister:
            persister.follow(ring)
            for seq in range(1, 101):
                ring.append(seq, reading_batch(seq))
        with RingReader(ring.path) as reader:
            in_ring = {b.seq: b.copy() for b in reader.since(0)}
    (path,) = persisted_files(tmp_path / "meter" / "reading" / "run1")
    assert path.name == "part-000001.parquet"
    assert not list(path.parent.glob("*.arrows")), "the live segment is removed"

    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    assert schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert schema.names == ["timestamp", "value", "unit", "labd_seq"]
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    assert meta["labd.stream"] == "meter/reading" and meta["labd.run_id"] == "run1"
    assert meta["labd.daemon_id"] == "lab" and meta["labd.kind"] == "readings"
    assert meta["labd.version"] and meta["labd.unit"] == "V"
    assert (meta["labd.first_seq"], meta["labd.last_seq"], meta["labd.batches"]) == (
        "1",
        "100",
        "100",
    )
    assert schema.field("value").metadata == {b"unit": b"V"}
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    table = parquet.read()
    assert table.num_rows == 100 * 100
    assert table.column("labd_seq").to_pylist()[::100] == list(range(1, 101))

    back = list(read_stream_file(path))  # as the ring had them: float seconds, same types
    assert [seq for seq, _ in back] == list(range(1, 101))
    for seq, batch in back:
        check_reading_batch(seq, batch)
        assert batch.schema.equals(READING_SCHEMA)
        assert batch.equals(in_ring[seq])


def test_units_that_change_within_a_segment_stay_per_row(tmp_path: Path) -> None:
    batches = [(seq, reading_batch(seq, 10)) for seq in range(1, 4)]
    mixed = pa.array(["W"] * 5 + ["dBm"] * 5).dictionary_encode()
    batches.append(
        (4, batches[0][1].set_column(2, "unit", mixed.cast(READING_SCHEMA.field("unit").type)))
    )
    source = tmp_path / "meter" / "reading" / "run0" / "_part-000001.arrows"
    write_segment(source, batches)
    done = finalize_segment(source)
    assert done is not None and done.path is not None and (done.batches, done.rows) == (4, 40)
    schema = pq.read_schema(done.path)
    assert schema.field("value").metadata is None and b"labd.unit" not in (schema.metadata or {})
    back = list(read_stream_file(done.path))
    assert [s for s, _ in back] == [1, 2, 3, 4]
    for (seq, original), (_, batch) in zip(batches, back, strict=True):
        assert batch.equals(original), seq  # each batch with its own dictionary again
    assert back[3][1].column("unit").to_pylist() == ["W"] * 5 + ["dBm"] * 5


def test_frames_become_an_arrow_ipc_file_read_zero_copy(ring_root: Path, tmp_path: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = frames_ring(rings)
        with Persister(tmp_path, "run1") as persister:
            persister.follow(ring)
            for seq in range(1, 21):
                ring.append(seq, frame_batch(seq))
    (path,) = persisted_files(tmp_path / "camera" / "frames" / "run1")
    assert path.name == "part-000001.arrow"
    reader = pa.ipc.open_file(pa.memory_map(str(path)))  # the IPC file format: a footer
    assert reader.num_record_batches == 20
    assert reader.schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert reader.schema.metadata[b"labd.kind"] == b"frames"
    back = list(read_stream_file(path))
    assert [seq for seq, _ in back] == list(range(1, 21))
    for seq, batch in back:
        assert batch.equals(frame_batch(seq))
        frame = frame_from_batch(batch)
        assert (frame.data == seq).all() and not frame.data.flags.owndata


def test_a_killed_daemon_s_segment_ends_at_its_last_complete_batch(tmp_path: Path) -> None:
    source = tmp_path / "meter" / "reading" / "run0" / "_part-000001.arrows"
    write_segment(source, [(seq, reading_batch(seq)) for seq in range(1, 11)], cut=100)
    mtime = source.stat().st_mtime_ns
    (done,) = finalize_all(tmp_path)
    assert done.source == source and not source.exists()
    assert done.path == source.parent / "part-000001.parquet"
    assert done.path.stat().st_mtime_ns == mtime, "the data's time, not the conversion's"
    assert [s for s, _ in read_stream_file(done.path)] == list(range(1, 10))

    # A segment with no complete batch holds nothing: it goes.
    empty = tmp_path / "meter" / "reading" / "run0" / "_part-000002.arrows"
    write_segment(empty, [(1, reading_batch(1))], cut=50)
    (nothing,) = finalize_all(tmp_path)
    assert nothing.path is None and not empty.exists()


def test_a_segment_being_written_is_left_alone(ring_root: Path, tmp_path: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = readings_ring(rings)
        with Persister(tmp_path, "run1") as writing:
            writing.follow(ring)
            ring.append(1, reading_batch(1))
            while writing.status()[0].file is None:
                time.sleep(0.001)
            live = writing.status()[0].file
            assert live is not None and live.name == "_part-000001.arrows"
            # Another daemon starting now, and retention, see it is written.
            other = Persister(tmp_path, "run2")
            assert other.finalizer is not None and other.finalizer.recovered.wait(10)
            other.close()
            assert live.exists() and finalize_segment(live, wait=False) is None
            assert closed_files(tmp_path) == []
            ring.append(2, reading_batch(2))
    (path,) = closed_files(tmp_path)
    assert path == live.with_name("part-000001.parquet")


def test_closed_files_lists_finalized_and_abandoned_segments_oldest_first(tmp_path: Path) -> None:
    run = tmp_path / "meter" / "reading"
    old = run / "run0" / "_part-000001.arrows"
    write_segment(old, [(1, reading_batch(1))])
    newer = run / "run0" / "_part-000002.arrows"
    write_segment(newer, [(2, reading_batch(2))])
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    finalize_segment(old)
    abandoned = run / "run1" / "_part-000001.arrows"
    write_segment(abandoned, [(1, reading_batch(1))])
    (tmp_path / "notes.txt").write_text("not data")
    assert closed_files(tmp_path) == [run / "run0" / "part-000001.parquet", newer, abandoned]


def test_a_crash_between_rename_and_removal_keeps_the_data_once(tmp_path: Path) -> None:
    source = tmp_path / "meter" / "reading" / "run0" / "_part-000001.arrows"
    write_segment(source, [(seq, reading_batch(seq)) for seq in range(1, 4)])
    copy = source.read_bytes()
    done = finalize_segment(source)
    assert done is not None and done.path is not None
    source.write_bytes(copy)  # as if the finalizer died before it removed the source
    (listed,) = persisted_files(source.parent)
    assert listed == done.path
    again = finalize_segment(source)
    assert again is not None and again.path == done.path and not source.exists()
    assert [s for s, _ in read_stream_file(done.path)] == [1, 2, 3]


def test_a_failed_finalize_leaves_the_segment_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "meter" / "reading" / "run0" / "_part-000001.arrows"
    write_segment(source, [(seq, reading_batch(seq)) for seq in range(1, 4)])
    # Where the temporary file would go there is a directory: writing it fails.
    (source.parent / f".part-000001.parquet.{os.getpid()}.tmp").mkdir()
    finalizer = Finalizer()
    with caplog.at_level(logging.ERROR):
        finalizer.submit(source)
        finalizer.close()
    assert "cannot finalize" in caplog.text and "finalized at the next start" in caplog.text
    assert finalizer.finalized == [] and len(finalizer.errors) == 1
    assert [s for s, _ in read_stream_file(source)] == [1, 2, 3]


def test_rotated_segments_are_finalized_while_the_next_is_written(
    ring_root: Path, tmp_path: Path
) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = readings_ring(rings)
        with Persister(tmp_path, "run1", rotate_bytes=16 << 10) as persister:
            persister.follow(ring)
            directory = persister.stream_directory("meter/reading")
            for seq in range(1, 61):
                ring.append(seq, reading_batch(seq))
                time.sleep(0.001)
            deadline = time.monotonic() + 10
            while not any(p.suffix == ".parquet" for p in persisted_files(directory)):
                assert time.monotonic() < deadline, "no rotated segment was finalized"
                time.sleep(0.01)
            live = persister.status()[0].file
            assert live is not None and live.suffix == ".arrows" and live.exists()
            with RingReader(ring.path) as reader:  # replay while segments are finalized
                assert [
                    s for s, _ in replay(T0, T0 + 100, ring=reader, directory=directory)
                ] == list(range(1, 61))
        files = persisted_files(directory)
    assert len(files) > 2 and all(f.suffix == ".parquet" for f in files)
    assert [s for f in files for s, _ in read_stream_file(f)] == list(range(1, 61))


def test_replay_reads_a_segment_finalized_after_it_was_listed(tmp_path: Path) -> None:
    directory = tmp_path / "meter" / "reading" / "run0"
    write_segment(directory / "_part-000001.arrows", [(s, reading_batch(s)) for s in (1, 2)])
    finalize_segment(directory / "_part-000001.arrows")
    second = directory / "_part-000002.arrows"
    write_segment(second, [(s, reading_batch(s)) for s in (3, 4)])
    batches = replay(T0, T0 + 100, directory=directory)
    assert next(batches)[0] == 1  # the directory is listed: part 2 is still live
    finalize_segment(second)  # before replay opens it
    assert not second.exists()
    assert [s for s, _ in batches] == [2, 3, 4]
