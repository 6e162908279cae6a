from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from labd.records import FRAME_SCHEMA, READING_SCHEMA
from labd.rings import BatchTooLarge, RingReader, RingSet
from labd.rings.layout import EOS_MARKER
from tests.labd.rings.batches import check_reading_batch, frame_batch, reading_batch


def open_frames(rings: RingSet, shape: tuple[int, int] = (64, 64), rate: float = 10):
    return rings.open_stream(
        "camera/frames",
        FRAME_SCHEMA,
        "frames",
        expected_batch_bytes=shape[0] * shape[1] * 2,
        batches_per_second=rate,
    )


def test_ring_is_created_in_place_with_its_header(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, retention_s=2, max_bytes=64 << 20) as rings:
        ring = open_frames(rings)
        assert ring.path == ring_root / "lab" / "camera%2Fframes.ring"
        assert [p.name for p in ring.path.parent.iterdir()] == [ring.path.name]  # no .tmp
        with RingReader(ring.path) as reader:
            assert reader.stream == "camera/frames"
            assert reader.kind == "frames"
            assert reader.schema.equals(FRAME_SCHEMA)
            assert reader.capacity == 20
            assert reader.write_seq == 0
            assert reader.latest() is None
            assert reader.writer_alive
    assert not ring_root.joinpath("lab").exists()  # removed on clean close


def test_each_slot_is_a_complete_ipc_stream(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = rings.open_stream(
            "meter/reading",
            READING_SCHEMA,
            "readings",
            expected_batch_bytes=10_000,
            batches_per_second=10,
        )
        ring.append(1, reading_batch(1))
        with RingReader(ring.path) as reader, reader.get(1) as b:
            raw = b.raw.to_pybytes()
    assert raw.startswith(ring.schema_bytes) and raw.endswith(EOS_MARKER)
    alone = pa.ipc.open_stream(raw).read_all()  # plain pyarrow reads a slot on its own
    check_reading_batch(1, alone.to_batches()[0])


def test_append_refuses_what_would_corrupt_the_ring(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = open_frames(rings, shape=(64, 64))
        ring.append(5, frame_batch(5))
        with pytest.raises(ValueError, match="must increase"):
            ring.append(5, frame_batch(5))
        with pytest.raises(ValueError, match="schema differs"):
            ring.append(6, reading_batch(6))
        with pytest.raises(BatchTooLarge, match="expected_batch_bytes") as info:
            ring.append(6, frame_batch(6, shape=(512, 512)))
        assert "8 KiB" not in str(info.value)  # sizes are in readable units
        ring.append(7, frame_batch(7))
        with RingReader(ring.path) as reader:
            assert [b.seq for b in reader.since(0)] == [5, 7]  # 6 is a gap, not damage


def test_a_batch_just_over_the_slot_is_refused_and_the_slot_emptied(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = open_frames(rings, shape=(64, 64))
        for seq in range(1, ring.layout.slot_count + 1):
            ring.append(seq, frame_batch(seq))
        # Data that fits the slot, but not together with the IPC message headers.
        width = (ring.layout.slot_size - len(ring.schema_bytes) - 100) // 2
        big = frame_batch(ring.layout.slot_count + 1, shape=(1, width))
        assert big.nbytes + len(ring.schema_bytes) <= ring.layout.slot_size
        with pytest.raises(BatchTooLarge):
            ring.append(ring.layout.slot_count + 1, big)
        with RingReader(ring.path) as reader:
            seqs = [b.seq for b in reader.since(0)]
        assert seqs == list(range(2, ring.layout.slot_count + 1))  # slot of batch 1 emptied
