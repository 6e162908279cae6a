"""The single writer of one ring: serialises each batch straight into shared memory.

The batch is written by Arrow's IPC writer directly into its slot of the mapping (no
intermediate buffer), which makes an append cost about one memcpy of the batch. The
file is created under a temporary name (private to the daemon's user unless a group was
given, :mod:`labd.rings.access`), allocated and pre-faulted (first touch of a
fresh page is an order of magnitude slower than a write to a resident one), and only then
renamed to its final name, so a reader never sees a half-made ring.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from labd.rings import layout as L
from labd.rings.access import PRIVATE, FileAccess
from labd.rings.errors import BatchTooLarge, RingSizeError
from labd.rings.futex import futex_wake
from labd.rings.sizing import RingPlan, fmt_bytes


class RingFollower(Protocol):
    """Something that acts on every batch the writer appends (the persister)."""

    def appended(self, seq: int) -> None:
        """Called on the writer's thread right after ``seq`` became visible: must not block."""

    def ring_closing(self) -> None:
        """Called before the ring is closed and removed: finish using it."""


class RingWriter:
    """Appends record batches of one stream to its ring; one per stream, one process."""

    def __init__(
        self,
        directory: Path,
        stream: str,
        schema: pa.Schema,
        kind: str,
        plan: RingPlan,
        *,
        retention_s: float,
        access: FileAccess = PRIVATE,
    ) -> None:
        if kind not in L.KINDS:
            raise ValueError(f"stream kind {kind!r} is not one of {', '.join(L.KINDS)}")
        self.stream = stream
        self.schema = schema
        self.kind = kind
        self.plan = plan
        self.path = directory / L.stream_file_name(stream)
        self.schema_bytes = schema.serialize().to_pybytes()
        self.layout = L.Layout(plan.slot_count, plan.slot_size, len(self.schema_bytes))
        self._followers: list[RingFollower] = []
        self._write_seq = 0
        self._closed = False
        ts = schema.get_field_index("timestamp")
        self._ts_column = ts if ts >= 0 and schema.field(ts).type == pa.float64() else None
        self._mm = self._create_file(directory, retention_s, access)
        view = memoryview(self._mm)
        self._view = view
        # Writable pyarrow buffers over memoryview slices: slicing a mutable pa.Buffer
        # gives a read-only one, and a FixedSizeBufferWriter over that crashes the process.
        self._slots = [
            pa.py_buffer(view[off : off + plan.slot_size])
            for off in (self.layout.slot_offset(i) for i in range(plan.slot_count))
        ]
        nwords = L.HEADER_WORDS + plan.slot_count * L.INDEX_WORDS
        self._words = np.frombuffer(self._mm, dtype="<u8", count=nwords)
        self._floats = self._words.view("<f8")
        self._futex_address = self._words.ctypes.data + L.H_WRITE_SEQ * L.WORD

    def _create_file(self, directory: Path, retention_s: float, access: FileAccess) -> mmap.mmap:
        size = self.layout.file_size
        tmp = directory / f"{self.path.name}.{os.getpid()}.tmp"
        try:
            fd = access.create_file(tmp, os.O_RDWR | os.O_TRUNC)
        except FileNotFoundError:
            # A daemon of the same id that was just stopping removed the directory.
            access.make_dirs(directory)
            fd = access.create_file(tmp, os.O_RDWR | os.O_TRUNC)
        try:
            try:
                # Reserve the pages now: a write into a mapping of a full tmpfs is a SIGBUS.
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                raise RingSizeError(
                    f"ring {self.stream!r}: cannot allocate {fmt_bytes(size)} in {directory} "
                    f"({exc.strerror}); free space in /dev/shm or lower the rings' max_bytes"
                ) from None
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        pages = np.frombuffer(mm, dtype=np.uint8)
        pages[:: L.PAGE] = 0  # pre-fault every page
        words = np.frombuffer(mm, dtype="<u8", count=L.HEADER_WORDS)
        lay = self.layout
        words[L.H_SLOT_COUNT] = lay.slot_count
        words[L.H_SLOT_SIZE] = lay.slot_size
        words[L.H_WRITER_PID] = os.getpid()
        words[L.H_HEARTBEAT_NS] = time.monotonic_ns()
        words[L.H_SCHEMA_OFFSET] = lay.schema_offset
        words[L.H_SCHEMA_LENGTH] = lay.schema_length
        words[L.H_INDEX_OFFSET] = lay.index_offset
        words[L.H_SLOTS_OFFSET] = lay.slots_offset
        words[L.H_STATE] = L.STATE_OPEN
        words[L.H_RETENTION_MS] = round(retention_s * 1000)
        words[L.H_KIND] = L.KINDS.index(self.kind)
        mm[lay.schema_offset : lay.schema_offset + lay.schema_length] = self.schema_bytes
        words[L.H_VERSION] = L.VERSION
        words[L.H_MAGIC] = L.MAGIC  # last: a ring without magic is not a ring yet
        del pages, words
        os.rename(tmp, self.path)
        return mm

    @property
    def write_seq(self) -> int:
        """Sequence number of the newest batch in the ring (0 before the first)."""
        return self._write_seq

    def add_follower(self, follower: RingFollower) -> None:
        self._followers.append(follower)

    def append(self, seq: int, batch: pa.RecordBatch) -> None:
        """Write ``batch`` as batch number ``seq`` (increasing; gaps allowed) into the ring.

        Matches ``Stream.add_sink``. Raises :class:`BatchTooLarge` without touching the
        ring when the batch cannot fit, and ``ValueError`` for a wrong schema or sequence.
        """
        if self._closed:
            raise ValueError(f"ring {self.stream!r} is closed")
        if seq <= self._write_seq:
            raise ValueError(
                f"ring {self.stream!r}: batch numbers must increase; got {seq} after "
                f"{self._write_seq}"
            )
        if not batch.schema.equals(self.schema):
            raise ValueError(
                f"ring {self.stream!r}: the batch's schema differs from the stream's:\n"
                f"{batch.schema}\nexpected:\n{self.schema}"
            )
        if batch.nbytes + self.layout.schema_length > self.layout.slot_size:
            raise self._too_large(batch.nbytes)
        first, last = self._time_span(batch)
        words, floats = self._words, self._floats
        slot = seq % self.layout.slot_count
        entry = L.HEADER_WORDS + slot * L.INDEX_WORDS
        words[entry + L.I_LOCK] = 2 * seq + 1  # odd: readers of this slot must discard it
        sink = pa.FixedSizeBufferWriter(self._slots[slot])
        try:
            with pa.ipc.new_stream(sink, self.schema) as ipc:
                ipc.write_batch(batch, custom_metadata={L.SEQ_METADATA_KEY: str(seq)})
        except OSError:
            # Out of bounds: the slot held the oldest batch, which this append was about
            # to replace anyway; mark it empty rather than leave half a batch in it.
            words[entry + L.I_NBYTES] = 0
            words[entry + L.I_LOCK] = 0
            raise self._too_large(batch.nbytes) from None
        now = time.monotonic_ns()
        words[entry + L.I_NBYTES] = sink.tell()
        floats[entry + L.I_FIRST_TS] = first
        floats[entry + L.I_LAST_TS] = last
        words[entry + L.I_ROWS] = batch.num_rows
        words[entry + L.I_WRITTEN_NS] = now
        words[entry + L.I_LOCK] = 2 * seq
        words[L.H_WRITE_SEQ] = seq
        words[L.H_HEARTBEAT_NS] = now
        self._write_seq = seq
        futex_wake(self._futex_address)
        for follower in self._followers:
            follower.appended(seq)

    def _time_span(self, batch: pa.RecordBatch) -> tuple[float, float]:
        if self._ts_column is None or batch.num_rows == 0:
            now = time.time()
            return now, now
        ts = batch.column(self._ts_column).to_numpy(zero_copy_only=False)
        first, last = float(ts.min()), float(ts.max())
        if math.isnan(first) or math.isnan(last):  # nulls or NaNs: rare, and slower
            first, last = (
                float(np.nanmin(ts, initial=math.inf)),
                float(np.nanmax(ts, initial=-math.inf)),
            )
            if math.isinf(first):
                first = last = time.time()
        return first, last

    def _too_large(self, nbytes: int) -> BatchTooLarge:
        return BatchTooLarge(
            f"ring {self.stream!r}: a batch of {fmt_bytes(nbytes)} does not fit in a slot of "
            f"{fmt_bytes(self.layout.slot_size)}; open the stream with a larger "
            "expected_batch_bytes, or publish fewer rows per batch (smaller frames: set an ROI)"
        )

    def heartbeat(self) -> None:
        """Tell readers and the stale-ring check that the writer lives (also when idle)."""
        if not self._closed:
            self._words[L.H_HEARTBEAT_NS] = time.monotonic_ns()

    def close(self, *, remove: bool = True) -> None:
        """Let followers finish, mark the ring closed, wake readers, unmap, and remove it."""
        if self._closed:
            return
        for follower in self._followers:
            follower.ring_closing()
        self._closed = True
        self._words[L.H_STATE] = L.STATE_CLOSED
        futex_wake(self._futex_address)
        # mmap.close() refuses while buffers exported from it are alive: drop ours first.
        del self._slots, self._words, self._floats
        # A view can outlive us in the traceback of an interrupted append (Ctrl-C); the
        # mapping then goes away with it, and the file is removed all the same.
        with contextlib.suppress(BufferError):
            self._view.release()
            self._mm.close()
        if remove:
            self.path.unlink(missing_ok=True)
