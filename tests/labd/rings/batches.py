"""Batches whose content follows from their number, so any mix of two batches shows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from capabilities import Frame, Roi
from labd.records import READING_SCHEMA, frame_to_batch

T0 = 1_700_000_000.0


def reading_batch(seq: int, rows: int = 100) -> pa.RecordBatch:
    """Rows at times T0 + seq + i/rows, values seq*1e6 + i, unit "V"."""
    i = np.arange(rows, dtype=np.float64)
    unit = pa.array(["V"] * rows).dictionary_encode().cast(READING_SCHEMA.field("unit").type)
    return pa.record_batch(
        [pa.array(T0 + seq + i / rows), pa.array(seq * 1e6 + i), unit], schema=READING_SCHEMA
    )


def check_reading_batch(seq: int, batch: pa.RecordBatch) -> None:
    rows = batch.num_rows
    assert np.array_equal(batch.column("value").to_numpy(), seq * 1e6 + np.arange(rows))
    assert batch.column("timestamp")[0].as_py() == T0 + seq
    assert batch.column("unit").to_pylist() == ["V"] * rows


def frame_batch(seq: int, shape: tuple[int, int] = (64, 64)) -> pa.RecordBatch:
    """A frame whose every pixel is ``seq`` (mod 2**16)."""
    data = np.full(shape, seq % 65536, dtype=np.uint16)
    return frame_to_batch(
        Frame(data=data, timestamp=T0 + seq, exposure_s=0.001, roi=Roi(0, 0, *shape[::-1]), seq=seq)
    )
