from __future__ import annotations

import contextlib
import resource
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from labd.records import FRAME_SCHEMA, READING_SCHEMA
from labd.rings import BatchMissing, RingLapped, RingNotFound, RingReader, RingSet, attach
from labd.rings import layout as L
from labd.rings.writer import RingWriter
from tests.labd.rings.batches import T0, check_reading_batch, frame_batch, reading_batch
from tests.labd.rings.conftest import start_writer, wait_for_output


def open_readings(rings: RingSet, rate: float = 4, retention_s: float = 1) -> RingWriter:
    return rings.open_stream(
        "meter/reading",
        READING_SCHEMA,
        "readings",
        expected_batch_bytes=100 * 17,
        batches_per_second=rate,
        retention_s=retention_s,
    )


def mapping_of(path: Path) -> tuple[int, int]:
    """The address range where this process maps ``path``, from /proc/self/maps."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path)):
            start, end = line.split()[0].split("-")
            return int(start, 16), int(end, 16)
    raise AssertionError(f"{path} is not mapped")


def test_a_frame_read_from_the_ring_is_a_view_into_the_shared_mapping(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = rings.open_stream(
            "camera/frames",
            FRAME_SCHEMA,
            "frames",
            expected_batch_bytes=2 * 256 * 256,
            batches_per_second=10,
        )
        ring.append(1, frame_batch(1, (256, 256)))
        with attach("camera/frames", root=ring_root) as reader, reader.latest() as b:
            frame = b.frame()
            start, end = mapping_of(reader.path)
            address = frame.data.ctypes.data
            assert start <= address and address + frame.data.nbytes <= end
            assert not frame.data.flags.writeable
            assert frame.seq == 1 and frame.data.shape == (256, 256)
            assert (frame.data == 1).all()


def test_latest_since_and_between(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = open_readings(rings, rate=8)
        for seq in range(1, 21):
            ring.append(seq, reading_batch(seq))
        with RingReader(ring.path) as reader:
            assert reader.capacity == 8 and reader.oldest_seq() == 13
            latest = reader.latest()
            assert latest is not None and latest.seq == 20
            assert [b.seq for b in reader.since(15)] == [16, 17, 18, 19, 20]
            with pytest.raises(RingLapped) as lapped:
                reader.since(3)
            assert lapped.value.behind == 16 and lapped.value.capacity == 8
            # batch n spans [T0 + n, T0 + n + 0.99]
            assert [b.seq for b in reader.between(T0 + 14.5, T0 + 16.2)] == [14, 15, 16]
            assert reader.between(T0, T0 + 10) == []  # already overwritten
            with pytest.raises(BatchMissing):
                reader.get(21)
            for b in reader.since(12):
                with b:
                    check_reading_batch(b.seq, b.batch)


def test_a_held_batch_is_reported_lapped_and_a_copy_survives(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = open_readings(rings)
        ring.append(1, reading_batch(1))
        with RingReader(ring.path) as reader:
            held = reader.get(1)
            kept = held.copy()
            for seq in range(2, 6):  # 4 slots: batch 5 reuses the slot of batch 1
                ring.append(seq, reading_batch(seq))
            assert not held.still_valid()
            with pytest.raises(RingLapped, match="batch 1 was overwritten"), held:
                pass
            with pytest.raises(RingLapped):
                held.copy()
            check_reading_batch(1, kept)


def test_attach_says_what_is_there(ring_root: Path) -> None:
    with pytest.raises(RingNotFound, match="is the daemon running"):
        attach("meter/reading", root=ring_root)
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        open_readings(rings)
        with pytest.raises(RingNotFound, match="lab: meter/reading"):
            attach("camera/frames", root=ring_root)
        with pytest.raises(RingNotFound, match="of daemon 'other'"):
            attach("meter/reading", daemon="other", root=ring_root)


def test_a_reader_in_another_process_sees_batches_without_tearing_or_spinning(
    ring_root: Path,
) -> None:
    writer = start_writer(ring_root, "lab", "readings", 0, 0)  # as fast as it can
    try:
        with attach("meter/reading", root=ring_root) as reader:
            good = lapped = attempts = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                seq = reader.wait(reader.write_seq - 1)
                attempts += 1
                try:
                    with reader.get(seq) as b:
                        values = b.batch.column("value").to_numpy().copy()
                        time.sleep(0.01 if attempts % 5 == 0 else 0)  # sometimes too slow
                except (RingLapped, BatchMissing):
                    lapped += 1
                    continue
                assert np.array_equal(values, seq * 1e6 + np.arange(len(values)))
                good += 1
            assert good > 20 and lapped > 0, (good, lapped)

            held = reader.get(reader.write_seq)
            while reader.write_seq < held.seq + reader.capacity:
                time.sleep(0.001)
            with pytest.raises(RingLapped) as info:
                held.check()
            assert info.value.behind >= reader.capacity
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait()


def test_follow_sleeps_until_the_writer_writes_and_ends_when_it_closes(ring_root: Path) -> None:
    writer = start_writer(ring_root, "lab", "readings", 60, 40)  # 60 batches in 1.5 s
    try:
        with attach("meter/reading", root=ring_root) as reader:
            cpu_before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
            wall_before = time.monotonic()
            seqs = []
            for b in reader.follow(after=0):
                with b:
                    check_reading_batch(b.seq, b.batch)
                seqs.append(b.seq)
            cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu_before
            wall = time.monotonic() - wall_before
            assert reader.closed
        assert seqs == list(range(1, 61))
        assert cpu < 0.3 * wall, f"follow used {cpu:.2f} s of CPU in {wall:.2f} s: spinning?"
    finally:
        wait_for_output(writer, "wrote 60")
        writer.wait()


class SeqlockMachine(RuleBasedStateMachine):
    """Random interleavings of writes, paused (torn) writes, reads and late uses.

    Whatever the interleaving, a batch the API still calls valid holds exactly the data
    written under its number.
    """

    @initialize()
    def open_ring(self) -> None:
        self.root = Path("/dev/shm") / f"labd-hyp-{id(self)}"
        self.rings = RingSet("h", root=self.root, max_bytes=16 << 20)
        self.ring = open_readings(self.rings)  # 4 slots: laps are frequent
        self.reader = RingReader(self.ring.path)
        self.next_seq = 1
        self.paused = False
        self.held: list = []

    def teardown(self) -> None:
        if hasattr(self, "reader"):
            self.held.clear()
            self.reader.close()
            self.rings.close()
            shutil.rmtree(self.root)

    @rule(rows=st.integers(1, 90))
    def write(self, rows: int) -> None:
        self.ring.append(self.next_seq, reading_batch(self.next_seq, rows))
        self.next_seq += 1
        self.paused = False

    @precondition(lambda self: not self.paused)
    @rule(data=st.data())
    def pause_mid_write(self, data: st.DataObject) -> None:
        """The writer stopped halfway through the next batch: seq odd, slot half new."""
        lay, seq = self.ring.layout, self.next_seq
        self.ring._words[lay.index_word(seq, L.I_LOCK)] = 2 * seq + 1
        start = lay.slot_offset(seq)
        junk = data.draw(st.binary(min_size=1, max_size=4096))
        offset = data.draw(st.integers(0, 2048))
        self.ring._view[start + offset : start + offset + len(junk)] = junk
        self.paused = True

    @rule(back=st.integers(0, 6))
    def read(self, back: int) -> None:
        seq = max(1, self.next_seq - 1 - back)
        with contextlib.suppress(RingLapped, BatchMissing):
            self.held.append(self.reader.get(seq))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def use(self, data: st.DataObject) -> None:
        b = self.held[data.draw(st.integers(0, len(self.held) - 1))]
        try:
            with b:
                values = b.batch.column("value").to_numpy().copy()
                units = b.batch.column("unit").indices.to_numpy().copy()
        except RingLapped:
            assert not b.still_valid()
        else:
            assert np.array_equal(values, b.seq * 1e6 + np.arange(len(values)))
            assert (units == 0).all()
        try:
            kept = b.copy()
        except RingLapped:
            return
        check_reading_batch(b.seq, kept)


SeqlockMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_seqlock_never_returns_torn_data = SeqlockMachine.TestCase


def test_a_batch_outlives_its_reader_and_stays_checkable(ring_root: Path) -> None:
    with RingSet("lab", root=ring_root, max_bytes=64 << 20) as rings:
        ring = open_readings(rings)
        ring.append(1, reading_batch(1))
        reader = RingReader(ring.path)
        held = reader.get(1)
        reader.close()
        with held:
            check_reading_batch(1, held.batch)
        for seq in range(2, 6):
            ring.append(seq, reading_batch(seq))
        with pytest.raises(RingLapped):
            held.check()
