"""Read a ring from any process on the machine: zero-copy, and never torn.

Batches come back as :class:`RingBatch`: a pyarrow ``RecordBatch`` whose buffers lie in
the shared mapping, plus what is needed to check, *after* using it, that the writer did
not overwrite it meanwhile. Zero-copy is only safe with that check, so the API makes it
the easy path: ``with reader.get(seq) as b: result = f(b.batch)`` raises
:class:`RingLapped` at the end of the block if the data changed under ``f``, and
:meth:`RingBatch.copy` gives a batch to keep, validated after copying.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa

from capabilities import Frame
from labd.records import frame_from_batch
from labd.rings import layout as L
from labd.rings.errors import RingError, RingLapped, RingNotFound
from labd.rings.futex import futex_wait


class BatchMissing(RingError, LookupError):
    """The ring has no batch with that number: not written yet, or refused by the writer."""

    code = "batch-missing"


class RingBatch:
    """One batch read from a ring, valid until the writer reuses its slot."""

    def __init__(
        self,
        reader: RingReader,
        seq: int,
        batch: pa.RecordBatch,
        raw: pa.Buffer,
        first_ts: float,
        last_ts: float,
    ) -> None:
        self.seq = seq
        self.batch = batch  # zero-copy: its buffers are views into the shared mapping
        self.raw = raw  # the slot's bytes: one complete Arrow IPC stream
        self.first_ts = first_ts
        self.last_ts = last_ts
        self._stream = reader.stream
        self._capacity = reader.capacity
        # Own references: the batch stays checkable (and mapped) after reader.close().
        self._words = reader._words
        self._lock_word = reader.layout.index_word(seq, L.I_LOCK)

    def still_valid(self) -> bool:
        """True if the writer has not touched this batch's slot since it was read."""
        return int(self._words[self._lock_word]) == 2 * self.seq

    def check(self) -> None:
        """Raise :class:`RingLapped` if the data may have changed since it was read."""
        if not self.still_valid():
            write_seq = int(self._words[L.H_WRITE_SEQ])
            raise RingLapped(self._stream, self.seq, write_seq, self._capacity)

    def copy(self) -> pa.RecordBatch:
        """A private copy of the batch, safe to keep after the ring moves on."""
        data = self.raw.to_pybytes()
        self.check()  # the copy is good only if the slot did not change while copying
        return _parse(pa.py_buffer(data))[1]

    def frame(self, row: int = 0) -> Frame:
        """The frame in ``row`` (frame streams); its ``data`` is a view into shared memory."""
        return frame_from_batch(self.batch, row)

    def __enter__(self) -> RingBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.check()

    def __repr__(self) -> str:
        return f"<RingBatch {self._stream}#{self.seq} rows={self.batch.num_rows}>"


def _parse(raw: pa.Buffer) -> tuple[int, pa.RecordBatch]:
    reader = pa.ipc.open_stream(raw)
    batch, metadata = reader.read_next_batch_with_custom_metadata()
    return int(metadata[L.SEQ_METADATA_KEY]), batch


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed but not yet reaped process is a zombie: dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class RingReader:
    """A read-only mapping of one ring file. Use :func:`attach` to find it by stream name."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.stream = L.stream_from_file_name(self.path.name)
        self._file = pa.memory_map(str(self.path), "r")
        self._buf = self._file.read_buffer()  # the whole file, zero-copy
        head = np.frombuffer(self._buf, dtype="<u8", count=L.HEADER_WORDS)
        if int(head[L.H_MAGIC]) != L.MAGIC or int(head[L.H_VERSION]) != L.VERSION:
            self._file.close()
            raise RingError(
                f"{self.path} is not a labd ring of version {L.VERSION} (magic/version "
                f"{int(head[L.H_MAGIC]):#x}/{int(head[L.H_VERSION])}); is the daemon newer?"
            )
        slot_count, slot_size = int(head[L.H_SLOT_COUNT]), int(head[L.H_SLOT_SIZE])
        schema_length = int(head[L.H_SCHEMA_LENGTH])
        self.layout = L.Layout(slot_count, slot_size, schema_length)
        self._words = np.frombuffer(
            self._buf, dtype="<u8", count=L.HEADER_WORDS + slot_count * L.INDEX_WORDS
        )
        self._floats = self._words.view("<f8")
        offset = self.layout.schema_offset
        self.schema = pa.ipc.read_schema(self._buf.slice(offset, schema_length))
        self.kind = L.KINDS[int(head[L.H_KIND])]
        self.retention_s = int(head[L.H_RETENTION_MS]) / 1000
        self.writer_pid = int(head[L.H_WRITER_PID])
        self._futex_address = self._buf.address + L.H_WRITE_SEQ * L.WORD

    @property
    def capacity(self) -> int:
        """How many batches the ring holds."""
        return self.layout.slot_count

    @property
    def write_seq(self) -> int:
        """Number of the newest complete batch (0: none yet)."""
        return int(self._words[L.H_WRITE_SEQ])

    @property
    def closed(self) -> bool:
        """The writer closed the ring cleanly: no more batches will come."""
        return int(self._words[L.H_STATE]) == L.STATE_CLOSED

    @property
    def writer_alive(self) -> bool:
        return not self.closed and _pid_alive(self.writer_pid)

    def heartbeat_age_s(self) -> float:
        return (time.monotonic_ns() - int(self._words[L.H_HEARTBEAT_NS])) / 1e9

    def oldest_seq(self) -> int:
        """The oldest batch number that may still be in the ring."""
        return max(1, self.write_seq - self.capacity + 1)

    def _lock(self, seq: int) -> int:
        return int(self._words[self.layout.index_word(seq, L.I_LOCK)])

    def _lapped(self, seq: int) -> RingLapped:
        return RingLapped(self.stream, seq, self.write_seq, self.capacity)

    def get(self, seq: int) -> RingBatch:
        """Batch ``seq``, zero-copy. Raises :class:`RingLapped` if it was overwritten,
        :class:`BatchMissing` if it is not (yet) in the ring."""
        lay, words, floats = self.layout, self._words, self._floats
        lock = self._lock(seq)
        if lock != 2 * seq or seq < 1:
            if lock >> 1 > seq:
                raise self._lapped(seq)
            raise BatchMissing(
                f"ring {self.stream!r} has no batch {seq} (newest is {self.write_seq})"
            )
        nbytes = min(int(words[lay.index_word(seq, L.I_NBYTES)]), lay.slot_size)
        first = float(floats[lay.index_word(seq, L.I_FIRST_TS)])
        last = float(floats[lay.index_word(seq, L.I_LAST_TS)])
        raw = self._buf.slice(lay.slot_offset(seq), nbytes)
        try:
            stored_seq, batch = _parse(raw)
        except Exception as exc:
            # Parsing bytes the writer was changing can fail in any way: that is a lap.
            if self._lock(seq) != lock:
                raise self._lapped(seq) from None
            raise RingError(f"ring {self.stream!r}: batch {seq} is corrupt: {exc}") from exc
        if self._lock(seq) != lock or stored_seq != seq:
            raise self._lapped(seq)
        return RingBatch(self, seq, batch, raw, first, last)

    def latest(self) -> RingBatch | None:
        """The newest batch, or None if nothing was written yet."""
        while True:
            seq = self.write_seq
            if seq == 0:
                return None
            try:
                return self.get(seq)
            except RingLapped:
                continue  # the writer went round the whole ring meanwhile: take the newer one

    def since(self, seq: int) -> list[RingBatch]:
        """Every batch after ``seq``, oldest first. Raises :class:`RingLapped` if some of
        them were already overwritten (start again from :meth:`oldest_seq`)."""
        newest = self.write_seq
        if seq + 1 < newest - self.capacity + 1:
            raise self._lapped(seq + 1)
        out = []
        for s in range(seq + 1, newest + 1):
            try:
                out.append(self.get(s))
            except BatchMissing:
                continue  # the writer refused that batch (too large): a gap, not a loss
        return out

    def between(self, start: float, end: float) -> list[RingBatch]:
        """The batches still in the ring whose time span overlaps [start, end], in order."""
        lay = self.layout
        index = self._words[L.HEADER_WORDS :].reshape(lay.slot_count, L.INDEX_WORDS).copy()
        locks = index[:, L.I_LOCK]
        times = index.view("<f8")
        hit = (
            (locks > 0)
            & (locks % 2 == 0)
            & (times[:, L.I_FIRST_TS] <= end)
            & (times[:, L.I_LAST_TS] >= start)
        )
        out = []
        for seq in sorted(int(s) for s in locks[hit] // 2):
            try:
                out.append(self.get(seq))
            except (RingLapped, BatchMissing):
                continue  # overwritten since the index was copied: no longer in the ring
        return out

    def wait(self, after: int, timeout: float | None = None) -> int:
        """Sleep until a batch newer than ``after`` exists; returns the newest number.

        Returns early (with ``write_seq <= after``) on timeout, or when the writer has
        closed the ring or died. Sleeps on a futex: no CPU while nothing happens.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seq = self.write_seq
            if seq > after or self.closed:
                return seq
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return seq
            # Wake at least once a second to notice a dead writer and let signals run.
            futex_wait(self._futex_address, seq, min(remaining, 1.0))
            if self.write_seq == seq and not self.writer_alive:
                return self.write_seq

    def follow(
        self, after: int | None = None, *, every: bool = True, timeout: float | None = None
    ) -> Iterator[RingBatch]:
        """Yield batches as they arrive, starting after batch ``after`` (default: now).

        ``every=True`` yields each batch in order and raises :class:`RingLapped` if the
        caller falls a whole ring behind; ``every=False`` yields only the newest batch each
        time (for live displays: never laps, skips what it had no time for). Ends when the
        writer closes the ring or dies, or after ``timeout`` seconds without a new batch.
        """
        last = self.write_seq if after is None else after
        while True:
            newest = self.wait(last, timeout)
            if newest <= last:
                return
            if every:
                yield from self.since(last)
            else:
                latest = self.latest()
                if latest is not None:
                    yield latest
            last = newest

    def close(self) -> None:
        """Unmap the ring. Batches still referenced keep their memory mapped until dropped."""
        del self._words, self._floats
        self._buf = pa.py_buffer(b"")
        self._file.close()

    def __enter__(self) -> RingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_root() -> Path:
    """Where rings live unless configured: ``/dev/shm/labd-<uid>``."""
    return Path("/dev/shm") / f"labd-{os.getuid()}"


def list_rings(root: Path | None = None) -> dict[str, list[str]]:
    """The streams that have a ring, by daemon id."""
    root = root or default_root()
    found: dict[str, list[str]] = {}
    if root.is_dir():
        for daemon_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            streams = sorted(
                L.stream_from_file_name(p.name) for p in daemon_dir.glob(f"*{L.RING_SUFFIX}")
            )
            if streams:
                found[daemon_dir.name] = streams
    return found


def attach(stream: str, *, daemon: str | None = None, root: Path | None = None) -> RingReader:
    """Open the ring of ``stream`` (e.g. "camera/frames") for reading.

    ``daemon`` is the daemon id; it may be left out when one daemon has that stream.
    """
    root = root or default_root()
    rings = list_rings(root)
    candidates = [d for d, streams in rings.items() if stream in streams]
    if daemon is not None:
        candidates = [d for d in candidates if d == daemon]
    if len(candidates) != 1:
        known = "; ".join(f"{d}: {', '.join(s)}" for d, s in rings.items()) or "none"
        if not candidates:
            raise RingNotFound(
                f"no ring for stream {stream!r}"
                + (f" of daemon {daemon!r}" if daemon else "")
                + f" under {root} (rings there: {known}); is the daemon running?"
            )
        raise RingNotFound(
            f"several daemons have a stream {stream!r} ({', '.join(candidates)}): "
            "pass daemon=... to choose"
        )
    return RingReader(root / candidates[0] / L.stream_file_name(stream))
