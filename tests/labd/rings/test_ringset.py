from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import pytest
import trio

from labd.records import FRAME_SCHEMA, READING_SCHEMA
from labd.rings import (
    Persister,
    RingError,
    RingReader,
    RingSet,
    RingSizeError,
    list_rings,
    persisted_files,
    read_stream_file,
)
from labd.rings import layout as L
from labd.rings.sizing import mem_available
from labd.streams import Stream
from tests.labd.rings.batches import check_reading_batch, reading_batch
from tests.labd.rings.conftest import start_writer, wait_for_output


def test_rings_of_a_killed_daemon_are_removed_at_the_next_start(
    ring_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = start_writer(ring_root, "lab", "readings", 0, 100)
    wait_for_output(writer, "wrote 10")
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = ring_root / "lab" / "meter%2Freading.ring"
    assert left.exists()  # SIGKILL: no clean shutdown
    with RingReader(left) as reader:
        assert not reader.writer_alive and not reader.closed
    # a half-made ring of a process that died while creating it
    (ring_root / "lab" / f"x.ring.{writer.pid}.tmp").write_bytes(b"")
    with caplog.at_level(logging.WARNING), RingSet("lab", root=ring_root, max_bytes=1 << 20):
        assert not left.exists()
        assert list((ring_root / "lab").iterdir()) == []
    assert "left behind by a daemon that is gone" in caplog.text


def test_a_live_daemon_keeps_its_rings_and_its_id(ring_root: Path) -> None:
    writer = start_writer(ring_root, "lab", "readings", 0, 100)
    try:
        with pytest.raises(RingError, match=f"running process {writer.pid}"):
            RingSet("lab", root=ring_root, max_bytes=1 << 20)
        with RingSet("other", root=ring_root, max_bytes=1 << 20):
            assert list_rings(ring_root) == {"lab": ["meter/reading"]}
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait()


def test_a_ring_whose_heartbeat_stopped_is_stale_even_if_its_pid_lives(ring_root: Path) -> None:
    """After a crash the pid may be reused by an unrelated process: the heartbeat tells."""
    old = RingSet("old", root=ring_root, max_bytes=1 << 20)
    ring = old.open_stream(
        "t/x", READING_SCHEMA, "readings", expected_batch_bytes=100, batches_per_second=1
    )
    ring._words[L.H_HEARTBEAT_NS] = time.monotonic_ns() - 120 * 10**9
    with RingSet("new", root=ring_root, max_bytes=1 << 20, stale_after_s=60):
        assert not ring.path.exists()
    ring.heartbeat()
    with RingSet("new", root=ring_root, max_bytes=1 << 20, stale_after_s=60):
        pass  # a fresh heartbeat: nothing removed
    old.close()


def test_ring_sizes_follow_time_and_are_bounded_by_bytes(
    ring_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame_bytes = 1024 * 1024 * 2
    with RingSet("lab", root=ring_root, retention_s=300, max_bytes=64 << 20) as rings:
        small = rings.open_stream(
            "meter/reading",
            READING_SCHEMA,
            "readings",
            expected_batch_bytes=1000,
            batches_per_second=10,
        )
        assert small.layout.slot_count == 3000 and small.plan.note is None
        with caplog.at_level(logging.WARNING):
            camera = rings.open_stream(
                "camera/frames",
                FRAME_SCHEMA,
                "frames",
                expected_batch_bytes=frame_bytes,
                batches_per_second=100,
            )
        assert 4 <= camera.layout.slot_count < 30_000
        assert camera.plan.retention_s < 1
        assert "instead of the 300 s asked for" in caplog.text
        assert rings.used_bytes <= rings.max_bytes
        with pytest.raises(RingSizeError, match="raise the rings' max_bytes"):
            rings.open_stream(
                "camera2/frames",
                FRAME_SCHEMA,
                "frames",
                expected_batch_bytes=8 * frame_bytes,
                batches_per_second=100,
            )
    with pytest.raises(RingSizeError, match="MemAvailable"):
        RingSet("lab", root=ring_root, max_bytes=2 * mem_available())


def test_names_that_cannot_be_files_are_refused(ring_root: Path) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        RingSet("../etc", root=ring_root)
    with RingSet("lab", root=ring_root, max_bytes=1 << 20) as rings:
        ring = rings.open_stream(
            "../../x", READING_SCHEMA, "readings", expected_batch_bytes=100, batches_per_second=1
        )
        assert ring.path.parent == ring_root / "lab"
        assert L.stream_from_file_name(ring.path.name) == "../../x"
        with pytest.raises(ValueError, match="1 to 200 characters"):
            rings.open_stream(
                "", READING_SCHEMA, "readings", expected_batch_bytes=100, batches_per_second=1
            )


def test_a_ring_is_a_stream_sink_and_the_set_keeps_its_heartbeat(
    ring_root: Path, tmp_path: Path
) -> None:
    """How the daemon wires a stream: ring as sink, persister following, heartbeat task."""
    stream = Stream("meter/reading", READING_SCHEMA, "readings")
    with RingSet("lab", root=ring_root, max_bytes=1 << 20) as rings:
        ring = rings.open_stream(
            stream.name,
            stream.schema,
            stream.kind,
            expected_batch_bytes=1700,
            batches_per_second=10,
        )
        with Persister(tmp_path, "run1") as persister:
            persister.follow(ring)
            stream.add_sink(ring.append)

            async def main() -> None:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(rings.keep_alive, 0.05)
                    for seq in range(1, 6):
                        assert stream.publish(reading_batch(seq)) == seq
                        await trio.sleep(0.05)
                    nursery.cancel_scope.cancel()

            trio.run(main)
            with RingReader(ring.path) as reader:
                assert reader.heartbeat_age_s() < 1
                assert [b.seq for b in reader.since(0)] == [1, 2, 3, 4, 5]
        (path,) = persisted_files(persister.status()[0].directory)
    assert path.name == "part-000001.parquet"
    assert [seq for seq, _ in read_stream_file(path)] == [1, 2, 3, 4, 5]
    for seq, batch in read_stream_file(path):
        check_reading_batch(seq, batch)
