from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pytest

from labd.records import READING_SCHEMA
from labd.rings import (
    Persister,
    RingSet,
    persisted_files,
    read_stream_file,
    read_stream_file_messages,
    tail_stream_file,
)
from labd.rings.layout import EOS_MARKER
from tests.labd.rings.batches import check_reading_batch, reading_batch


def write_file(path: Path, seqs: range) -> list[int]:
    """A stream file like the persister's; returns the end offset of each batch."""
    sink = pa.BufferOutputStream()
    ends = []
    with pa.ipc.new_stream(sink, READING_SCHEMA) as writer:
        for seq in seqs:
            writer.write_batch(reading_batch(seq, 10), custom_metadata={"labd.seq": str(seq)})
            ends.append(sink.tell())
    path.write_bytes(sink.getvalue().to_pybytes()[: ends[-1]])  # no end-of-stream: a crash
    return ends


def test_a_truncated_tail_ends_reading_at_the_last_complete_batch(tmp_path: Path) -> None:
    path = tmp_path / "part-000001.arrows"
    ends = write_file(path, range(1, 6))
    whole = path.read_bytes()
    for cut in range(ends[-2], ends[-1], 7):  # every kind of cut inside the last batch
        path.write_bytes(whole[:cut])
        assert [s for s, _ in read_stream_file(path)] == [1, 2, 3, 4]
    path.write_bytes(whole[:100])  # inside the schema
    assert list(read_stream_file(path)) == []


def test_plain_pyarrow_stops_at_a_truncated_tail_with_an_error(tmp_path: Path) -> None:
    """What docs/live-data.md says: open_stream reads the complete batches, then raises."""
    path = tmp_path / "part-000001.arrows"
    ends = write_file(path, range(1, 4))
    path.write_bytes(path.read_bytes()[: ends[-1] - 5])
    reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    check_reading_batch(1, reader.read_next_batch())
    check_reading_batch(2, reader.read_next_batch())
    with pytest.raises((OSError, pa.ArrowInvalid)):
        reader.read_next_batch()


def test_tail_follows_a_file_while_the_persister_writes_it(ring_root: Path, tmp_path: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=16 << 20) as rings:
        ring = rings.open_stream(
            "meter/reading",
            READING_SCHEMA,
            "readings",
            expected_batch_bytes=1700,
            batches_per_second=100,
        )
        persister = Persister(tmp_path, "run1")
        persister.follow(ring)
        ring.append(1, reading_batch(1))
        directory = persister.stream_directory("meter/reading")
        while not persisted_files(directory):
            threading.Event().wait(0.005)
        seen: list[int] = []
        tail = threading.Thread(
            target=lambda: seen.extend(
                s for s, _ in tail_stream_file(persisted_files(directory)[0])
            )
        )
        tail.start()
        for seq in range(2, 51):
            ring.append(seq, reading_batch(seq))
            threading.Event().wait(0.002)
        persister.close()  # ends the file with end-of-stream: the tail ends by itself
        tail.join(timeout=10)
    assert not tail.is_alive()
    assert seen == list(range(1, 51))


def test_tail_gives_up_on_a_file_that_stops_growing(tmp_path: Path) -> None:
    path = tmp_path / "part-000001.arrows"
    write_file(path, range(1, 4))
    got = [s for s, _ in tail_stream_file(path, idle_timeout_s=0.2)]
    assert got == [1, 2, 3]


def write_persisted_file(path: Path, seqs: range) -> None:
    """A file as the persister writes it: each batch's messages as its ring slot held them
    (a stream of its own, dictionary included), after one schema."""
    schema = READING_SCHEMA.serialize().to_pybytes()
    parts = [schema]
    for seq in seqs:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, READING_SCHEMA) as writer:
            writer.write_batch(reading_batch(seq, 10), custom_metadata={"labd.seq": str(seq)})
        parts.append(sink.getvalue().to_pybytes()[len(schema) : -len(EOS_MARKER)])
    path.write_bytes(b"".join(parts) + EOS_MARKER)


def test_each_batch_s_stored_messages_make_that_batch_again(tmp_path: Path) -> None:
    path = tmp_path / "part-000001.arrows"
    write_persisted_file(path, range(1, 6))
    path.write_bytes(path.read_bytes()[:-20])  # a crash inside batch 5
    got = list(read_stream_file_messages(path))
    assert [s for s, _, _ in got] == [1, 2, 3, 4]
    # Batches in another order, each its own bytes unchanged: a valid stream (each
    # carries its unit dictionary).
    stream = READING_SCHEMA.serialize().to_pybytes()
    stream += b"".join(messages.to_pybytes() for _, _, messages in reversed(got))
    stream += EOS_MARKER
    reader = pa.ipc.open_stream(pa.py_buffer(stream))
    for seq, _, _ in reversed(got):
        batch, metadata = reader.read_next_batch_with_custom_metadata()
        assert int(metadata["labd.seq"]) == seq
        check_reading_batch(seq, batch)
