"""Every batch of a time range, once and in order, from the files and the ring together.

Old batches are only on disk, the newest only in the ring (the persister is a little
behind), and the middle is in both. Batches carry their number (``labd.seq``) in both
places, so the two sources are merged by number, each batch taken once: from the file
when it is there, from the ring when the file lacks it (the disk was full) or has not got
it yet. If the writer overwrites a ring batch while replay reads it, that batch has
reached the disk by then (or is lost for good), so the files are read again from there.
Files are live ``.arrows`` segments or finalized Parquet / Arrow IPC files
(:mod:`labd.rings.finalize`); the latter are converted back to the stream's live schema
(float seconds), so what replay gives does not depend on which a batch came from. A
segment finalized while replay lists the directory is read from its finalized file.

:func:`replay` gives batches to use; :func:`replay_raw` gives each batch's stored IPC
messages, to send on (``Lab.replay``) without decoding and encoding them again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa

from labd.rings.errors import RingLapped
from labd.rings.files import (
    FINAL_SUFFIXES,
    batch_messages,
    final_path,
    is_live,
    part_number,
    persisted_files,
    read_finalized_file,
)
from labd.rings.layout import EOS_MARKER
from labd.rings.reader import RingBatch, RingReader
from labd.rings.stream_files import read_stream_file, read_stream_file_messages

T = TypeVar("T")


@dataclass(frozen=True)
class RawBatch:
    """One batch as stored: its IPC messages (dictionaries, then the record batch with
    ``labd.seq``), which make the batch again when appended to a stream of its schema.

    From a file, ``messages`` is a view of the mapped file, valid as long as it is held.
    From the ring it is a view of the slot, *not* a copy: copy it, then call
    :meth:`still_valid`; a False means the writer overwrote the slot meanwhile and the
    copy is garbage (replay again after the last good batch: it is in the files now).
    """

    seq: int
    messages: pa.Buffer
    ring_batch: RingBatch | None = None

    def still_valid(self) -> bool:
        return self.ring_batch is None or self.ring_batch.still_valid()


def _overlaps(batch: pa.RecordBatch, start: float, end: float) -> bool:
    if batch.num_rows == 0 or "timestamp" not in batch.schema.names:
        return True  # no time to filter by: keep it rather than lose it silently
    column = batch.column("timestamp")
    if pa.types.is_timestamp(column.type):  # a finalized file's own schema: to seconds
        seconds = (
            column.cast(pa.int64()).to_numpy(zero_copy_only=False)
            / _UNITS_PER_SECOND[column.type.unit]
        )
        return bool(np.nanmin(seconds) <= end and np.nanmax(seconds) >= start)
    ts = column.to_numpy(zero_copy_only=False)
    return bool(np.nanmin(ts) <= end and np.nanmax(ts) >= start)


_UNITS_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


FileReader = Callable[[Path, int, float, float], Iterator[tuple[int, T]]]


FileItems = Callable[[Path], Iterator[tuple[int, pa.RecordBatch, pa.Buffer | None]]]


def _file_items(
    directory: Path, after: int, start: float, end: float, raw: bool
) -> Iterator[tuple[int, pa.RecordBatch, pa.Buffer | None]]:
    """``(seq, batch, stored messages or None)`` of the files, numbered above ``after``."""

    def items(path: Path) -> Iterator[tuple[int, pa.RecordBatch, pa.Buffer | None]]:
        if path.suffix in FINAL_SUFFIXES:
            for seq, batch in read_finalized_file(path, after=after, start=start, end=end):
                yield seq, batch, None  # messages made only for the batches asked for
        elif raw:
            yield from read_stream_file_messages(path)
        else:
            for seq, batch in read_stream_file(path):
                yield seq, batch, None

    for path in persisted_files(directory):
        yield from _finalized_meanwhile(path, items)


def _finalized_meanwhile(
    path: Path, items: FileItems
) -> Iterator[tuple[int, pa.RecordBatch, pa.Buffer | None]]:
    """The items of ``path``; of its finalized file if it was finalized since listed."""
    found = items(path)
    try:
        first = next(found)
    except StopIteration:
        return
    except FileNotFoundError:
        number = part_number(path)
        if not is_live(path) or number is None:
            return  # removed (retention): nothing left to read
        for suffix in FINAL_SUFFIXES:
            final = final_path(path.parent, number, suffix)
            if final.exists():
                yield from items(final)
                return
        return
    yield first
    yield from found


def _batches_from_files(
    directory: Path, after: int, start: float, end: float
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """File batches numbered above ``after`` (all of them are scanned, in order)."""
    for seq, batch, _ in _file_items(directory, after, start, end, raw=False):
        if seq > after and _overlaps(batch, start, end):
            yield seq, batch


def _raw_from_files(
    directory: Path, after: int, start: float, end: float
) -> Iterator[tuple[int, RawBatch]]:
    for seq, batch, messages in _file_items(directory, after, start, end, raw=True):
        if seq > after and _overlaps(batch, start, end):
            stored = messages if messages is not None else batch_messages(seq, batch)
            yield seq, RawBatch(seq, stored)


def _merge(
    start: float,
    end: float,
    ring: RingReader | None,
    directory: Path | None,
    after: int,
    from_files: FileReader[T],
    from_ring: Callable[[RingBatch], T | None],
) -> Iterator[tuple[int, T]]:
    """The merge of both sources; ``from_ring`` gives None for a batch overwritten already."""
    last = after
    while True:
        # Snapshot the ring first: batches it drops while the files are read reach them.
        pending = deque(ring.between(start, end) if ring is not None else ())
        files = from_files(directory, last, start, end) if directory is not None else iter(())
        for seq, item in files:
            while pending and pending[0].seq < seq:
                missing_on_disk = pending.popleft()  # e.g. the disk was full
                taken = from_ring(missing_on_disk)
                if taken is not None and missing_on_disk.seq > last:
                    last = missing_on_disk.seq
                    yield last, taken
            if pending and pending[0].seq == seq:
                pending.popleft()
            last = seq
            yield seq, item
        lapped = False
        for ring_batch in pending:
            if ring_batch.seq <= last:
                continue
            taken = from_ring(ring_batch)
            if taken is None:
                lapped = True  # it is on disk by now (or gone): read the files again
                break
            last = ring_batch.seq
            yield last, taken
        if not lapped:
            return


def replay(
    start: float,
    end: float,
    *,
    ring: RingReader | None = None,
    directory: Path | None = None,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Yield ``(seq, batch)`` for each batch whose timestamps overlap [start, end].

    ``directory`` is the stream's persisted-file directory
    (:meth:`Persister.stream_directory`), ``ring`` a reader of its ring; either may be
    None. Batches from files are memory-mapped, batches from the ring are copies, so
    everything yielded stays valid.
    """
    return _merge(start, end, ring, directory, 0, _batches_from_files, _copy_or_none)


def replay_raw(
    start: float,
    end: float,
    *,
    ring: RingReader | None = None,
    directory: Path | None = None,
    after: int = 0,
) -> Iterator[RawBatch]:
    """The batches :func:`replay` would give (those numbered above ``after``), as stored.

    Nothing is decoded but what the time filter needs, and nothing is copied: ring
    batches are views of their slots, to be copied and then checked
    (:meth:`RawBatch.still_valid`) by the caller.
    """
    schema_length = ring.layout.schema_length if ring is not None else 0

    def from_ring(ring_batch: RingBatch) -> RawBatch | None:
        if not ring_batch.still_valid():
            return None
        # The slot is a whole stream: drop its schema message and end-of-stream marker.
        size = ring_batch.raw.size - schema_length - len(EOS_MARKER)
        return RawBatch(ring_batch.seq, ring_batch.raw.slice(schema_length, size), ring_batch)

    for _, raw in _merge(start, end, ring, directory, after, _raw_from_files, from_ring):
        yield raw


def _copy_or_none(ring_batch: RingBatch) -> pa.RecordBatch | None:
    try:
        return ring_batch.copy()
    except RingLapped:
        return None
