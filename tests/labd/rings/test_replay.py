from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from labd.records import READING_SCHEMA
from labd.rings import Persister, RawBatch, RingReader, RingSet, replay, replay_raw
from labd.rings.layout import EOS_MARKER
from labd.rings.writer import RingWriter
from tests.labd.rings.batches import T0, check_reading_batch, reading_batch


def append_persisted(ring: RingWriter, persister: Persister, seqs: range) -> None:
    """Append at the pace of the persister (the ring here is only 8 batches deep)."""
    for seq in seqs:
        ring.append(seq, reading_batch(seq))
        while persister.status()[0].last_seq < seq:
            time.sleep(0.001)


def meter_ring(rings: RingSet) -> RingWriter:
    """A ring holding about a second of reading batches: older ones live only in files."""
    return rings.open_stream(
        "meter/reading",
        READING_SCHEMA,
        "readings",
        expected_batch_bytes=1700,
        batches_per_second=8,
        retention_s=1,
    )


def test_replay_joins_files_and_ring_without_gaps_or_repeats(
    ring_root: Path, tmp_path: Path
) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = meter_ring(rings)
        persister = Persister(tmp_path, "run1", rotate_bytes=16 << 10)
        persister.follow(ring)
        append_persisted(ring, persister, range(1, 61))
        persister.close()  # the files have 1..60
        for seq in range(61, 66):  # only in the ring (the persister is "behind")
            ring.append(seq, reading_batch(seq))
        directory = persister.stream_directory("meter/reading")
        with RingReader(ring.path) as reader:
            assert reader.oldest_seq() == 58  # 58..65 in the ring: 58..60 in both

            everything = list(replay(T0, T0 + 100, ring=reader, directory=directory))
            assert [s for s, _ in everything] == list(range(1, 66))
            for seq, batch in everything:
                check_reading_batch(seq, batch)

            # batch n spans [T0 + n, T0 + n + 0.99]
            window = [s for s, _ in replay(T0 + 55.5, T0 + 62.2, ring=reader, directory=directory)]
            assert window == list(range(55, 63))
            assert [s for s, _ in replay(T0 + 62, T0 + 70, ring=reader)] == [62, 63, 64, 65]
            assert [s for s, _ in replay(T0, T0 + 3.5, directory=directory)] == [1, 2, 3]


def test_replay_takes_from_the_ring_what_the_files_lack(ring_root: Path, tmp_path: Path) -> None:
    """E.g. the disk was full for a while: those batches come from the ring, in order."""
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = rings.open_stream(
            "meter/reading",
            READING_SCHEMA,
            "readings",
            expected_batch_bytes=1700,
            batches_per_second=16,
            retention_s=1,
        )
        persister = Persister(tmp_path, "run1")
        persister.follow(ring)
        append_persisted(ring, persister, range(1, 11))
        persister.close()
        ring._followers.clear()  # 11..14 never reach the disk
        for seq in range(11, 15):
            ring.append(seq, reading_batch(seq))
        persister = Persister(tmp_path, "run1")
        persister.follow(ring)
        append_persisted(ring, persister, range(15, 21))
        persister.close()
        with RingReader(ring.path) as reader:
            got = list(
                replay(
                    T0, T0 + 100, ring=reader, directory=persister.stream_directory("meter/reading")
                )
            )
    assert [s for s, _ in got] == list(range(1, 21))


def decode(raws: list[RawBatch]) -> list[tuple[int, pa.RecordBatch]]:
    """What a client of ``Lab.replay`` does: the raw batches after a schema, as one stream."""
    stream = READING_SCHEMA.serialize().to_pybytes()
    stream += b"".join(raw.messages.to_pybytes() for raw in raws) + EOS_MARKER
    reader = pa.ipc.open_stream(pa.py_buffer(stream))
    out = []
    for _ in raws:
        batch, metadata = reader.read_next_batch_with_custom_metadata()
        out.append((int(metadata["labd.seq"]), batch))
    return out


def test_replay_raw_gives_the_same_batches_as_stored_bytes(ring_root: Path, tmp_path: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = meter_ring(rings)
        persister = Persister(tmp_path, "run1", rotate_bytes=16 << 10)
        persister.follow(ring)
        append_persisted(ring, persister, range(1, 31))
        persister.close()  # the files have 1..30
        for seq in range(31, 36):  # only in the ring
            ring.append(seq, reading_batch(seq))
        directory = persister.stream_directory("meter/reading")
        with RingReader(ring.path) as reader:
            raws = list(replay_raw(T0, T0 + 100, ring=reader, directory=directory))
            assert [r.seq for r in raws] == list(range(1, 36))
            assert [r.ring_batch is not None for r in raws] == [False] * 30 + [True] * 5
            assert all(r.still_valid() for r in raws)
            for seq, batch in decode(raws):
                check_reading_batch(seq, batch)
            after = replay_raw(T0 + 10.5, T0 + 100, ring=reader, directory=directory, after=20)
            assert [r.seq for r in after] == list(range(21, 36))

            # A ring batch is a view of its slot: once the writer reuses the slot, the
            # batch says so, and what was copied from it must be thrown away.
            newest = raws[-1]
            for seq in range(36, 36 + reader.capacity):
                ring.append(seq, reading_batch(seq))
            assert not newest.still_valid()


def test_a_time_range_selects_batches_with_utc_timestamps_too() -> None:
    # Finalized files carry timestamp[ns, UTC]; the ring carries float seconds.
    from labd.rings.replay import _overlaps

    ns = pa.array([int(T0 * 1e9), int((T0 + 0.5) * 1e9)]).cast(pa.timestamp("ns", tz="UTC"))
    utc = pa.record_batch([ns], names=["timestamp"])
    seconds = pa.record_batch([pa.array([T0, T0 + 0.5])], names=["timestamp"])
    for batch in (utc, seconds):
        assert _overlaps(batch, T0 + 0.25, T0 + 1)
        assert not _overlaps(batch, T0 + 1, T0 + 2)
