from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from labd.records import FRAME_SCHEMA, READING_SCHEMA, frame_from_batch
from labd.rings import (
    Persister,
    RingReader,
    RingSet,
    finalize_segment,
    persisted_files,
    read_stream_file,
    tail_stream_file,
)
from labd.rings.ipc_segment import finish
from labd.rings.writer import RingWriter
from tests.labd.rings.batches import check_reading_batch, frame_batch, reading_batch
from tests.labd.rings.conftest import REPO, start_writer, wait_for_output


def open_readings(rings: RingSet, rate: float = 100):
    return rings.open_stream(
        "meter/reading",
        READING_SCHEMA,
        "readings",
        expected_batch_bytes=100 * 17,
        batches_per_second=rate,
        retention_s=1,
    )


def test_files_hold_the_same_batches_as_the_ring(ring_root: Path, tmp_path: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = open_readings(rings)
        persister = Persister(tmp_path, "run1", rotate_bytes=64 << 10, finalize=False)
        persister.follow(ring)
        for seq in range(1, 101):
            ring.append(seq, reading_batch(seq))
        with RingReader(ring.path) as reader:
            in_ring = {b.seq: b.raw.to_pybytes() for b in reader.since(0)}
        persister.close()
        (status,) = persister.status()
    assert (status.batches, status.lost, status.last_seq, status.error) == (100, 0, 100, None)
    files = persisted_files(persister.stream_directory("meter/reading"))
    assert files[0] == tmp_path / "meter" / "reading" / "run1" / "_part-000001.arrows"
    assert len(files) > 1  # rotated by size
    seqs = []
    for path in files:
        table = pa.ipc.open_stream(pa.memory_map(str(path))).read_all()  # plain pyarrow
        assert table.schema.equals(READING_SCHEMA)
        assert table.schema.metadata[b"labd.stream"] == b"meter/reading"
        for seq, batch in read_stream_file(path):
            check_reading_batch(seq, batch)
            if seq in in_ring:  # the very bytes of the ring slot, as an IPC stream
                assert pa.ipc.open_stream(in_ring[seq]).read_next_batch().equals(batch)
            seqs.append(seq)
    assert seqs == list(range(1, 101))


def test_a_killed_writer_leaves_files_readable_to_the_last_complete_batch(
    ring_root: Path, tmp_path: Path
) -> None:
    writer = start_writer(ring_root, "lab", "frames", 0, 100, tmp_path, "run1")
    wait_for_output(writer, "wrote 100")
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    directory = tmp_path / "camera" / "frames" / "run1"
    files = persisted_files(directory)
    assert [f.name for f in files] == ["_part-000001.arrows"]  # the open segment
    persisted = [(seq, batch) for path in files for seq, batch in read_stream_file(path)]
    seqs = [seq for seq, _ in persisted]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 1
    for seq, batch in persisted:
        assert (frame_from_batch(batch).data == seq).all()

    with RingReader(ring_root / "lab" / "camera%2Fframes.ring") as reader:
        assert not reader.writer_alive
        assert reader.write_seq >= seqs[-1]  # files never run ahead of the ring
        overlap = 0
        for b in reader.since(reader.oldest_seq() - 1):
            if b.seq <= seqs[-1]:
                with b:
                    assert b.batch.equals(persisted[b.seq - 1][1])
                overlap += 1

    # A restart cleans the dead ring, finalizes the open segment to its last complete
    # batch, and continues in a new one.
    again = start_writer(ring_root, "lab", "frames", 20, 0, tmp_path, "run1")
    wait_for_output(again, "wrote 20")
    assert again.wait() == 0
    new_files = persisted_files(directory)
    assert [f.name for f in new_files] == ["part-000001.arrow", "part-000002.arrow"]
    assert list(read_stream_file(new_files[0])) == persisted
    assert [s for s, _ in read_stream_file(new_files[-1])] == list(range(1, 21))


def _full_disk_scenario(
    data_dir: Path, ring_root: Path, free_space: Callable[[], None] | None
) -> None:
    """Persist into a disk that fills up: a 2 MiB tmpfs, or, where no tmpfs can be
    mounted, a subprocess limited by RLIMIT_FSIZE (``free_space`` None)."""
    log = logging.getLogger("labd.rings.persister")
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = open_readings(rings, rate=1000)
        if free_space is None:  # the ring exists: from now on no file may exceed 1 MiB
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        persister = Persister(data_dir, "run1", sync_bytes=4096)
        persister.follow(ring)
        seq = 0
        while persister.status()[0].error is None:
            seq += 1
            ring.append(seq, reading_batch(seq))  # never raises: acquisition goes on
            assert seq < 5000, "the disk never filled up"
        for more in range(seq + 1, seq + 50):
            ring.append(more, reading_batch(more))
        with RingReader(ring.path) as reader:
            assert reader.write_seq == seq + 49  # the ring has everything
        status = persister.status()[0]
        assert "free disk space" in (status.error or "")
        errors = [m for m in messages if m.startswith("cannot persist")]
        assert len(errors) == 1, messages  # logged once, not once per batch
        if free_space is not None:
            free_space()
            for more in range(seq + 50, seq + 60):
                ring.append(more, reading_batch(more))
        persister.close()
        status = persister.status()[0]
    files = persisted_files(persister.stream_directory("meter/reading"))
    seqs = [s for path in files for s, batch in read_stream_file(path)]
    assert seqs == sorted(seqs) and seqs[0] == 1
    if free_space is not None:
        assert status.error is None and seqs[-1] == seq + 59  # recovered
        assert any("works again" in m for m in messages)
    log.removeHandler(handler)


@contextlib.contextmanager
def tiny_tmpfs(path: Path) -> Iterator[bool]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True
    )
    try:
        yield mounted.returncode == 0
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(path)], check=True)


def test_a_full_disk_is_reported_once_and_acquisition_goes_on(
    ring_root: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    with tiny_tmpfs(disk) as mounted:
        if mounted:
            filler = disk / "filler"
            filler.write_bytes(b"x" * (1 << 20))
            _full_disk_scenario(disk, ring_root, filler.unlink)
            return
    # No mount allowed here: a real file-size limit on a real process instead.
    code = (
        "import sys; from pathlib import Path\n"
        "from tests.labd.rings.test_persister import _full_disk_scenario\n"
        "_full_disk_scenario(Path(sys.argv[1]), Path(sys.argv[2]), None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(disk), str(ring_root)], cwd=REPO)
    assert done.returncode == 0


def test_an_unwritable_directory_is_reported_and_acquisition_goes_on(
    ring_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = rings.open_stream(
            "camera/frames",
            FRAME_SCHEMA,
            "frames",
            expected_batch_bytes=64 * 64 * 2,
            batches_per_second=10,
        )
        with caplog.at_level(logging.ERROR), Persister(not_a_dir, "run1") as persister:
            persister.follow(ring)
            for seq in range(1, 11):
                ring.append(seq, frame_batch(seq))
        (status,) = persister.status()
        assert status.batches == 0 and status.lost == 10
        assert "point persistence at a writable directory" in (status.error or "")
        assert caplog.text.count("cannot persist") == 1
        with RingReader(ring.path) as reader:
            assert reader.write_seq == 10
    assert os.listdir(tmp_path) == ["file"]


def big_frames_ring(rings: RingSet, shape: tuple[int, int]) -> RingWriter:
    return rings.open_stream(
        "camera/frames",
        FRAME_SCHEMA,
        "frames",
        expected_batch_bytes=shape[0] * shape[1] * 2 + 4096,
        batches_per_second=10,
        retention_s=2,
    )


def test_frames_are_written_with_o_direct_and_finished_into_an_ipc_file_in_place(
    ring_root: Path, tmp_path: Path
) -> None:
    # 1 MiB and more per batch: O_DIRECT, and a frame that ends inside a disk block.
    shape = (1001, 601)
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = big_frames_ring(rings, shape)
        persister = Persister(tmp_path, "run1")
        persister.follow(ring)
        ring_batches = []
        for seq in range(1, 13):
            ring.append(seq, frame_batch(seq, shape))
            with RingReader(ring.path) as reader:
                ring_batches.append(reader.get(seq).copy())
        live = persister.status()[0].file
        assert live is not None and live.name == "_part-000001.arrows"
        while persister.status()[0].batches < 12:
            threading.Event().wait(0.005)
        assert live.stat().st_size % 4096 == 0, "whole blocks, written with O_DIRECT"
        persister.close()
        (status,) = persister.status()
    assert (status.batches, status.lost, status.error) == (12, 0, None)
    assert persister.finalizer is not None and not persister.finalizer.errors
    (done,) = persister.finalizer.finalized
    assert done.path == live.with_name("part-000001.arrow") and done.batches == 12
    assert [f.name for f in persisted_files(live.parent)] == ["part-000001.arrow"]
    # A valid Arrow IPC file: magic, then a stream (schema, batches, end), then the footer.
    reader = pa.ipc.open_file(str(done.path))
    assert reader.num_record_batches == 12
    assert reader.schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert reader.schema.metadata[b"labd.last_seq"] == b"12"
    table = reader.read_all()
    assert table.column("labd_seq").to_pylist() == list(range(1, 13))
    source = pa.memory_map(str(done.path))
    source.seek(8)
    assert pa.ipc.open_stream(source).read_all().equals(table)
    assert pd.read_feather(done.path).shape == (12, 10)
    assert pl.scan_ipc(done.path).select(pl.len()).collect().item() == 12
    # The batches as the ring had them, frames as zero-copy views of the file.
    persisted = list(read_stream_file(done.path))
    assert [s for s, _ in persisted] == list(range(1, 13))
    for (seq, batch), in_ring in zip(persisted, ring_batches, strict=True):
        assert batch.equals(in_ring)
        assert (frame_from_batch(batch).data == seq).all()


def test_a_frames_segment_finished_but_not_renamed_is_read_and_finalized_again(
    ring_root: Path, tmp_path: Path
) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = big_frames_ring(rings, (64, 64))
        persister = Persister(tmp_path, "run1", finalize=False)
        persister.follow(ring)
        for seq in range(1, 6):
            ring.append(seq, frame_batch(seq))
        persister.close()
    (segment,) = persisted_files(persister.stream_directory("camera/frames"))
    before = list(read_stream_file(segment))
    finished = finish(segment)  # a daemon killed between the footer and the rename
    assert finished is not None and finished.batches == 5
    assert segment.read_bytes()[:6] == b"ARROW1"
    assert list(read_stream_file(segment)) == before
    done = finalize_segment(segment)
    assert done is not None and done.path is not None and done.batches == 5
    assert list(read_stream_file(done.path)) == before
    assert [s for s, _ in before] == list(range(1, 6))


def test_a_frames_segment_is_tailed_across_the_padding_of_its_last_block(
    ring_root: Path, tmp_path: Path
) -> None:
    shape = (1001, 601)  # O_DIRECT: each frame's last block is padded until the next
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = big_frames_ring(rings, shape)
        persister = Persister(tmp_path, "run1", finalize=False)
        persister.follow(ring)
        ring.append(1, frame_batch(1, shape))
        directory = persister.stream_directory("camera/frames")
        while persister.status()[0].batches < 1:
            threading.Event().wait(0.005)
        seen: list[int] = []
        tail = threading.Thread(
            target=lambda: seen.extend(
                s for s, _ in tail_stream_file(persisted_files(directory)[0])
            )
        )
        tail.start()
        for seq in range(2, 9):
            threading.Event().wait(0.05)  # the tail waits at the padding meanwhile
            ring.append(seq, frame_batch(seq, shape))
        persister.close()
        tail.join(timeout=10)
    assert not tail.is_alive()
    assert seen == list(range(1, 9))


def test_a_frames_segment_left_open_ends_at_its_last_frame_and_is_finalized(
    ring_root: Path, tmp_path: Path
) -> None:
    shape = (1001, 601)
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = big_frames_ring(rings, shape)
        persister = Persister(tmp_path / "data", "run1", finalize=False)
        persister.follow(ring)
        for seq in range(1, 6):
            ring.append(seq, frame_batch(seq, shape))
        while persister.status()[0].batches < 5:
            threading.Event().wait(0.005)
        live = persister.status()[0].file
        assert live is not None
        # The file as a SIGKILL now would leave it: its last block padded with zeros.
        left = tmp_path / "left" / "camera" / "frames" / "run0" / live.name
        left.parent.mkdir(parents=True)
        shutil.copyfile(live, left)
        persister.close()
    assert left.stat().st_size % 4096 == 0
    reader = pa.ipc.open_stream(pa.memory_map(str(left)))  # plain pyarrow: the zeros end it
    assert reader.read_all().column("labd_seq").to_pylist() == list(range(1, 6))
    assert [s for s, _ in read_stream_file(left)] == list(range(1, 6))
    done = finalize_segment(left)
    assert done is not None and done.path is not None and done.batches == 5
    assert pa.ipc.open_file(str(done.path)).num_record_batches == 5
