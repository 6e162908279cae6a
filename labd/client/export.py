"""All data of a run, written to files other tools read: Parquet, HDF5 or CSV (docs/runs.md).

Every stream's batches in the run's seq range come through ``Lab.replayRun`` (the daemon's
ring and files, so it works from any machine), batch by batch: a run of many frames never
has to fit in memory. Each batch is written as it arrives:

* **parquet**: a directory, one ``<stream>.parquet`` per stream (``meter/reading.parquet``),
  the columns of the stream plus ``labd_seq``, timestamps as ``timestamp[ns, tz=UTC]``
  (like the daemon's finalized files, docs/live-data.md), and ``run.json``, the record;
* **hdf5**: one file (h5py), a group per stream, each column a dataset, frames one
  N×H×W dataset ``frames``; units, the seq range and the record (``labd.run``) as
  attributes;
* **csv**: a directory, one ``<stream>.csv`` per stream; frame streams are skipped (CSV has
  no images), and :attr:`Exported.skipped` says so.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from labd.contract.runs import RunRecord
from labd.rings.files import SEQ_COLUMN, TIMESTAMP, seconds_to_ns

if TYPE_CHECKING:
    from labd.client.lab import Lab

FORMATS = ("parquet", "hdf5", "csv")

PIXELS = "pixels"
"""The column that makes a stream one of frames (:data:`labd.records.FRAME_SCHEMA`)."""

UNIT_OF = ("value", "number")
"""The columns whose unit the ``unit`` column gives (readings, parameters)."""


class OutputUnusable(Exception):
    """The output cannot be written (a path that cannot be created, a full disk), or cannot
    hold the run in this format. The message says which, and what to do."""


@dataclass
class Exported:
    """What :func:`export_run` wrote."""

    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    """Rows written per stream."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Streams not written, and why."""


class _Writer(Protocol):
    def write(self, seq: int, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


async def export_run(lab: Lab, run_id: str, fmt: str, path: Path) -> Exported:
    """Write every stream of run ``run_id`` to ``path`` in format ``fmt`` (:data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    record = await lab.get_run(run_id)
    exported = Exported(path)
    with _open_output(fmt, path, record) as make:
        for stream, seqs in record.streams.items():
            if seqs.batches == 0:
                continue
            async with lab.replay_run_batches(run_id, stream) as source:
                assert source.schema is not None
                if fmt == "csv" and PIXELS in source.schema.names:
                    exported.skipped[stream] = "frames: CSV has no images (use parquet or hdf5)"
                    continue
                with _writing(path):
                    writer = make(stream, source.schema, seqs.first, seqs.last)
                rows = 0
                try:
                    async for seq, batch in source:
                        with _writing(path):
                            writer.write(seq, batch)
                        rows += batch.num_rows
                finally:
                    with _writing(path):
                        writer.close()
                exported.rows[stream] = rows
    return exported


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A file error while writing the output is the output's (not the connection's)."""
    try:
        yield
    except OSError as e:
        raise OutputUnusable(f"cannot write {path}: {e.strerror or e}; pick another path") from None


@contextlib.contextmanager
def _open_output(fmt: str, path: Path, record: RunRecord) -> Iterator[Any]:
    """A factory ``make(stream, schema, first, last) -> writer`` for ``fmt`` at ``path``."""
    if fmt == "hdf5":
        import h5py  # type: ignore[import-untyped]

        with _writing(path):
            hdf = h5py.File(path, "w")
        with hdf:
            hdf.attrs["labd.run_id"] = record.id
            hdf.attrs["labd.run"] = record.to_json()
            yield lambda stream, schema, first, last: _Hdf5Stream(
                hdf.create_group(stream), schema, first, last
            )
        return
    with _writing(path):
        path.mkdir(parents=True, exist_ok=True)
        (path / "run.json").write_text(json.dumps(json.loads(record.to_json()), indent=2))
    writer = _ParquetStream if fmt == "parquet" else _CsvStream
    yield lambda stream, schema, first, last: writer(
        path / f"{stream}.{fmt}", schema, record.id, stream
    )


def _with_seq(seq: int, batch: pa.RecordBatch) -> pa.Table:
    """``batch`` as the daemon's finalized files have it: UTC timestamps, ``labd_seq``."""
    table = pa.Table.from_batches([batch])
    if TIMESTAMP in table.schema.names:
        index = table.schema.get_field_index(TIMESTAMP)
        table = table.set_column(index, TIMESTAMP, seconds_to_ns(table.column(TIMESTAMP)))
    return table.append_column(SEQ_COLUMN, pa.array(np.full(table.num_rows, seq, np.int64)))


class _ParquetStream:
    def __init__(self, path: Path, schema: pa.Schema, run_id: str, stream: str) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self._pq = pq
        self._path = path
        self._metadata = {"labd.run_id": run_id, "labd.stream": stream}
        self._writer: Any = None

    def write(self, seq: int, batch: pa.RecordBatch) -> None:
        table = _with_seq(seq, batch)
        if self._writer is None:
            schema = table.schema.with_metadata(self._metadata)
            self._writer = self._pq.ParquetWriter(str(self._path), schema, compression="zstd")
        self._writer.write_table(table.replace_schema_metadata(self._metadata))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _CsvStream:
    def __init__(self, path: Path, schema: pa.Schema, run_id: str, stream: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._writer: Any = None

    def write(self, seq: int, batch: pa.RecordBatch) -> None:
        import pyarrow.csv as csv

        table = _with_seq(seq, batch)
        # CSV has no dictionaries: their values, as text.
        for i, f in enumerate(table.schema):
            if pa.types.is_dictionary(f.type):
                table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
        if self._writer is None:
            self._writer = csv.CSVWriter(str(self._path), table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _Hdf5Stream:
    """One stream's group: a resizable dataset per column, frames as N×H×W."""

    def __init__(self, group: Any, schema: pa.Schema, first: int | None, last: int | None) -> None:
        self._group = group
        self._frames = PIXELS in schema.names
        group.attrs["first_seq"] = first or 0
        group.attrs["last_seq"] = last or 0
        self._units: set[str] = set()
        self._shape: tuple[int, int, str] | None = None

    def write(self, seq: int, batch: pa.RecordBatch) -> None:
        import h5py

        for name in batch.schema.names:
            column = batch.column(name)
            if name == PIXELS:
                self._write_frames(batch)
                continue
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                values = np.array(column.to_pylist(), dtype=object)
                self._append(name, values, h5py.string_dtype("utf-8"))
                if name == "unit":
                    self._units.update(values)
            else:
                values = column.to_numpy(zero_copy_only=False)
                self._append(name, values, values.dtype)
        self._append(SEQ_COLUMN, np.full(batch.num_rows, seq, np.int64), np.dtype(np.int64))

    def _write_frames(self, batch: pa.RecordBatch) -> None:
        heights = batch.column("height").to_pylist()
        widths = batch.column("width").to_pylist()
        dtypes = batch.column("dtype").to_pylist()
        pixels = batch.column(PIXELS)
        for row in range(batch.num_rows):
            shape = (heights[row], widths[row], dtypes[row])
            if self._shape is None:
                self._shape = shape
            elif shape != self._shape:
                raise OutputUnusable(
                    f"{self._group.name.lstrip('/')}: the frames changed shape during the run"
                    f" ({_shape_text(self._shape)} to {_shape_text(shape)}); HDF5 takes one"
                    " shape per stream: export with --format parquet"
                )
            height, width, dtype = shape
            image = np.frombuffer(pixels[row].as_buffer(), dtype=dtype).reshape(height, width)
            self._append("frames", image[np.newaxis], image.dtype)

    def _append(self, name: str, values: np.ndarray, dtype: Any) -> None:
        group = self._group
        if name not in group:
            group.create_dataset(
                name,
                data=values,
                dtype=dtype,
                maxshape=(None, *values.shape[1:]),
                chunks=True,
                **({"compression": "gzip"} if name != "frames" else {}),
            )
            return
        dataset = group[name]
        start = dataset.shape[0]
        dataset.resize(start + len(values), axis=0)
        dataset[start:] = values

    def close(self) -> None:
        # A unit that held for the whole run is an attribute of the column it is the unit of.
        if len(self._units) == 1:
            (unit,) = self._units
            for name in UNIT_OF:
                if name in self._group:
                    self._group[name].attrs["unit"] = unit
        if "timestamp" in self._group:
            self._group["timestamp"].attrs["unit"] = "s since 1970-01-01 UTC"


def _shape_text(shape: tuple[int, int, str]) -> str:
    height, width, dtype = shape
    return f"{height}×{width} {dtype}"
