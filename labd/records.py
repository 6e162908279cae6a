"""How values become Arrow record batches, the one format of every stream.

The same batch bytes travel everywhere: into the shared-memory ring, into the
``.arrows`` files on disk, over RPC to clients. So the layout is defined once, here.

Readings are many rows per batch (per-batch overhead is microseconds, so one batch per
value would cost more than the value). A frame is one row whose ``pixels`` column holds the
raw image bytes; :func:`frame_from_batch` returns a numpy *view* on that buffer, which is
what makes ring reads zero-copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from capabilities import Frame, Reading, Roi

READING_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.float64()),
        pa.field("value", pa.float64()),
        pa.field("unit", pa.dictionary(pa.int8(), pa.string())),
    ]
)

FRAME_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.float64()),
        pa.field("seq", pa.int64()),
        pa.field("exposure_s", pa.float64()),
        pa.field("roi_x", pa.int32()),
        pa.field("roi_y", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("dtype", pa.string()),
        pa.field("pixels", pa.large_binary()),
    ]
)


def readings_to_batch(readings: Sequence[Reading]) -> pa.RecordBatch:
    """Pack many readings into one batch (the unit is dictionary-encoded: usually one value)."""
    return pa.record_batch(
        [
            pa.array([r.timestamp for r in readings], pa.float64()),
            pa.array([r.value for r in readings], pa.float64()),
            pa.array([r.unit for r in readings], pa.string())
            .dictionary_encode()
            .cast(READING_SCHEMA.field("unit").type),
        ],
        schema=READING_SCHEMA,
    )


def readings_from_batch(batch: pa.RecordBatch) -> list[Reading]:
    ts = batch.column("timestamp").to_pylist()
    vs = batch.column("value").to_pylist()
    us = batch.column("unit").to_pylist()
    return [Reading(value=v, unit=u, timestamp=t) for t, v, u in zip(ts, vs, us, strict=True)]


def frame_to_batch(frame: Frame) -> pa.RecordBatch:
    """One frame as a one-row batch. The pixel bytes are wrapped, not copied."""
    data = np.ascontiguousarray(frame.data)
    height, width = data.shape[:2]
    pixels = pa.py_buffer(data.reshape(-1).view(np.uint8))
    offsets = pa.py_buffer(np.array([0, pixels.size], dtype=np.int64).tobytes())
    return pa.record_batch(
        [
            pa.array([frame.timestamp], pa.float64()),
            pa.array([frame.seq], pa.int64()),
            pa.array([frame.exposure_s], pa.float64()),
            pa.array([frame.roi.x], pa.int32()),
            pa.array([frame.roi.y], pa.int32()),
            pa.array([height], pa.int32()),
            pa.array([width], pa.int32()),
            pa.array([str(data.dtype)], pa.string()),
            pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, pixels]),
        ],
        schema=FRAME_SCHEMA,
    )


def frame_from_batch(batch: pa.RecordBatch, row: int = 0) -> Frame:
    """The frame in ``row`` of ``batch``; ``frame.data`` is a read-only view, no copy."""
    col = batch.column("pixels")
    offsets = np.frombuffer(
        col.buffers()[1], dtype=np.int64, count=len(col) + 1, offset=col.offset * 8
    )
    start, stop = int(offsets[row]), int(offsets[row + 1])
    height = batch.column("height")[row].as_py()
    width = batch.column("width")[row].as_py()
    dtype = np.dtype(batch.column("dtype")[row].as_py())
    data = np.frombuffer(
        col.buffers()[2], dtype=dtype, count=(stop - start) // dtype.itemsize, offset=start
    ).reshape(height, width)
    return Frame(
        data=data,
        timestamp=batch.column("timestamp")[row].as_py(),
        exposure_s=batch.column("exposure_s")[row].as_py(),
        roi=Roi(
            batch.column("roi_x")[row].as_py(), batch.column("roi_y")[row].as_py(), width, height
        ),
        seq=batch.column("seq")[row].as_py(),
    )


def batch_to_ipc(batch: pa.RecordBatch) -> bytes:
    """A complete Arrow IPC stream (schema + one batch): readable alone, appendable to a file."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def batch_from_ipc(data: bytes | memoryview | pa.Buffer) -> pa.RecordBatch:
    """Inverse of :func:`batch_to_ipc`; zero-copy over ``data`` when it is a pyarrow Buffer."""
    reader = pa.ipc.open_stream(pa.py_buffer(data) if not isinstance(data, pa.Buffer) else data)
    return reader.read_next_batch()
