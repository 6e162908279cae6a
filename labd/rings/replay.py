"""Every batch of a time range, once and in order, from the files and the ring together.

Old batches are only on disk, the newest only in the ring (the persister is a little
behind), and the middle is in both. Batches carry their number (``labd.seq``) in both
places, so the two sources are merged by number, each batch taken once: from the file
when it is there, from the ring when the file lacks it (the disk was full) or has not got
it yet. If the writer overwrites a ring batch while replay reads it, that batch has
reached the disk by then (or is lost for good), so the files are read again from there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from labd.rings.errors import RingLapped
from labd.rings.persister import persisted_files
from labd.rings.reader import RingBatch, RingReader
from labd.rings.stream_files import read_stream_file


def _overlaps(batch: pa.RecordBatch, start: float, end: float) -> bool:
    if batch.num_rows == 0 or "timestamp" not in batch.schema.names:
        return True  # no time to filter by: keep it rather than lose it silently
    ts = batch.column("timestamp").to_numpy(zero_copy_only=False)
    return bool(np.nanmin(ts) <= end and np.nanmax(ts) >= start)


def _from_files(
    directory: Path | None, after: int, start: float, end: float
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """File batches numbered above ``after`` (all of them are scanned, in order)."""
    if directory is None:
        return
    for path in persisted_files(directory):
        for seq, batch in read_stream_file(path):
            if seq > after and _overlaps(batch, start, end):
                yield seq, batch


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
    last = 0
    while True:
        # Snapshot the ring first: batches it drops while the files are read reach them.
        pending = deque(ring.between(start, end) if ring is not None else ())
        for seq, batch in _from_files(directory, last, start, end):
            while pending and pending[0].seq < seq:
                missing_on_disk = pending.popleft()  # e.g. the disk was full
                copy = _copy_or_none(missing_on_disk)
                if copy is not None and missing_on_disk.seq > last:
                    last = missing_on_disk.seq
                    yield last, copy
            if pending and pending[0].seq == seq:
                pending.popleft()
            last = seq
            yield seq, batch
        lapped = False
        for ring_batch in pending:
            if ring_batch.seq <= last:
                continue
            copy = _copy_or_none(ring_batch)
            if copy is None:
                lapped = True  # it is on disk by now (or gone): read the files again
                break
            last = ring_batch.seq
            yield last, copy
        if not lapped:
            return


def _copy_or_none(ring_batch: RingBatch) -> pa.RecordBatch | None:
    try:
        return ring_batch.copy()
    except RingLapped:
        return None
