"""Where the persisted files of a stream lie, what they are called, and how to read them back.

Layout (docs/live-data.md, "The files on disk")::

    <data_dir>/<stream path, "/" as directories>/<run_id>/
        _part-000003.arrows    the live segment: an Arrow IPC stream, crash-safe
        part-000001.parquet    a finalized segment (readings, results, parameters)
        part-000002.arrow      a finalized segment of frames (Arrow IPC file format)

so ``<data_dir>/meter/reading/*/*.parquet`` is every run of one stream, and a glob, a
``pyarrow.dataset`` or pandas/Dask given the stream's directory read it as one table. The
live segment's name starts with ``_``: pyarrow datasets, pandas and Dask skip such files
(and ``.``-files, the finalizer's temporary ones) when they list a directory.

A finalized file keeps everything replay needs: each row's batch number in the
``labd_seq`` column (the batches of a segment are the runs of equal ``labd_seq``),
timestamps as ``timestamp[ns, tz=UTC]`` and the stream's live schema in the metadata
(:data:`LIVE_SCHEMA_KEY`), so :func:`read_finalized_file` gives back the batches exactly
as the ring held them: float seconds, the same columns and types, the same numbers.

Nothing here loads daemon code: clients and notebooks read files with it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa

from labd.rings.layout import EOS_MARKER, SEQ_METADATA_KEY

LIVE_PREFIX = "_part-"
FINAL_PREFIX = "part-"
LIVE_SUFFIX = ".arrows"
PARQUET_SUFFIX = ".parquet"
IPC_FILE_SUFFIX = ".arrow"
FINAL_SUFFIXES = (PARQUET_SUFFIX, IPC_FILE_SUFFIX)

SEQ_COLUMN = "labd_seq"
"""The batch number of each row in a finalized file (``labd.seq`` of its IPC batch)."""

TIMESTAMP = "timestamp"
TIMESTAMP_TYPE = pa.timestamp("ns", tz="UTC")

# Schema metadata of persisted files (the live segment's schema message carries the
# first five too, so a segment left by a killed daemon can be finalized with them).
STREAM_KEY = "labd.stream"
RUN_KEY = "labd.run_id"
DAEMON_KEY = "labd.daemon_id"
VERSION_KEY = "labd.version"
KIND_KEY = "labd.kind"
LIVE_SCHEMA_KEY = "labd.live_schema"  # base64 of the stream's schema as the ring has it
FIRST_SEQ_KEY = "labd.first_seq"
LAST_SEQ_KEY = "labd.last_seq"
BATCHES_KEY = "labd.batches"
UNIT_KEY = "labd.unit"  # the stream's one unit in this file, when it had only one
UNIT_FIELD_KEY = "unit"  # field metadata of the value column, likewise

IPC_FILE_MAGIC = b"ARROW1\x00\x00"
"""The first 8 bytes of an Arrow IPC file (its last 6 are ``ARROW1`` too)."""

_PART = re.compile(r"_?part-(\d{6,})\.(arrows|arrow|parquet)")


def _path_part(name: str) -> str:
    """One directory name for one ``/``-separated piece of a stream name."""
    quoted = quote(name, safe="")
    if quoted in ("", ".", ".."):  # quote() never makes "%" or "%2E" of anything else
        return "%" + quoted.replace(".", "%2E")
    return quoted


def stream_directory(data_dir: Path, run_id: str, stream: str) -> Path:
    """Where the files of ``stream`` of run ``run_id`` are written."""
    return Path(data_dir).joinpath(*map(_path_part, stream.split("/")), _path_part(run_id))


def part_number(path: Path) -> int | None:
    """The segment number of a persisted file's name, None for other files."""
    match = _PART.fullmatch(path.name)
    return int(match.group(1)) if match else None


def live_path(directory: Path, number: int) -> Path:
    return directory / f"{LIVE_PREFIX}{number:06d}{LIVE_SUFFIX}"


def final_path(directory: Path, number: int, suffix: str) -> Path:
    return directory / f"{FINAL_PREFIX}{number:06d}{suffix}"


def is_live(path: Path) -> bool:
    return path.name.endswith(LIVE_SUFFIX)


def persisted_files(directory: Path) -> list[Path]:
    """The files of one stream directory (one run), oldest segment first.

    A segment is listed once: finalized if its finalized file exists (the finalizer
    renames that into place before it removes the live ``.arrows``), live otherwise.
    """
    by_number: dict[int, Path] = {}
    try:
        names = list(Path(directory).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for path in names:
        number = part_number(path)
        if number is None:
            continue
        if number not in by_number or is_live(by_number[number]):
            by_number[number] = path
    return [by_number[n] for n in sorted(by_number)]


def is_locked(path: Path) -> bool:
    """True while some process writes or finalizes ``path`` (it holds its ``flock``)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def closed_files(data_dir: Path) -> list[Path]:
    """Every persisted file under ``data_dir`` that no daemon is writing, oldest first.

    Finalized files and ``.arrows`` segments whose writer is gone (they wait to be
    finalized at the next start), ordered by modification time -- finalizing keeps the
    segment's own. What a persister writes or finalizes now is locked and left out, so
    deleting from this list (retention) never removes data being written.
    """
    found: list[tuple[int, str, Path]] = []
    for root, dirs, names in os.walk(data_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(root, name)
            if part_number(path) is None or (is_live(path) and is_locked(path)):
                continue
            with contextlib.suppress(FileNotFoundError):  # finalized or removed meanwhile
                found.append((path.stat().st_mtime_ns, str(path), path))
    return [path for _, _, path in sorted(found)]


def live_segments(data_dir: Path) -> Iterator[Path]:
    """Every live ``.arrows`` segment under ``data_dir`` (being written or left behind)."""
    for root, dirs, names in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(LIVE_PREFIX) and name.endswith(LIVE_SUFFIX):
                yield Path(root, name)


_TEMP = re.compile(r"\._?part-\d{6,}\.(arrows|arrow|parquet)\.(\d+)\.tmp")


def temp_file_pid(path: Path) -> int | None:
    """The pid in the name of a temporary file of the persister or finalizer, else None."""
    match = _TEMP.fullmatch(path.name)
    return int(match.group(2)) if match else None


def temp_files(data_dir: Path) -> Iterator[Path]:
    """Temporary files of persisters and finalizers under ``data_dir`` (hidden names)."""
    for root, dirs, names in os.walk(data_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                path = Path(root, name)
                if temp_file_pid(path) is not None:
                    yield path


# -- timestamps ------------------------------------------------------------------------

_NS = 1_000_000_000
_MAX_S = 9.2e9  # int64 nanoseconds reach year 2262


def seconds_to_ns(seconds: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Float seconds since the epoch as ``timestamp[ns, tz=UTC]``; NaN and null become null.

    Whole seconds and the fraction are converted apart, so a time after 1970-04 (where a
    float64 second has steps coarser than 2 ns) comes back bit for bit by
    :func:`ns_to_seconds`.
    """
    x = np.asarray(seconds.to_numpy(zero_copy_only=False), dtype=np.float64)
    valid = np.isfinite(x) & (np.abs(x) < _MAX_S)
    if not valid.all():
        x = np.where(valid, x, 0.0)
    whole = np.floor(x)
    ns = whole.astype(np.int64) * _NS + np.rint((x - whole) * _NS).astype(np.int64)
    mask = None if valid.all() else ~valid
    return pa.array(ns, pa.int64(), mask=mask).cast(TIMESTAMP_TYPE)


def ns_to_seconds(stamps: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Inverse of :func:`seconds_to_ns` (null stays null)."""
    if isinstance(stamps, pa.ChunkedArray):
        stamps = stamps.combine_chunks() if stamps.num_chunks != 1 else stamps.chunk(0)
    ints = stamps.cast(pa.int64())
    nulls = ints.null_count
    ns = np.asarray(
        (ints.fill_null(0) if nulls else ints).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    whole = np.floor_divide(ns, _NS)
    x = whole.astype(np.float64) + (ns - whole * _NS).astype(np.float64) / _NS
    mask = np.asarray(ints.is_null().to_numpy(zero_copy_only=False)) if nulls else None
    return pa.array(x, pa.float64(), mask=mask)


# -- the schema of finalized files ------------------------------------------------------

UNIT_OF = {"readings": "value", "parameters": "number"}
"""The column whose unit the ``unit`` column gives, by stream kind."""


def final_schema(live: pa.Schema, metadata: dict[str, str], unit: str | None) -> pa.Schema:
    """The schema of a stream's finalized files: UTC timestamps, ``labd_seq``, ``metadata``
    (and ``unit``, the segment's one unit, as metadata of the column it applies to)."""
    fields = []
    unit_column = UNIT_OF.get(metadata.get(KIND_KEY, ""))
    for field in live:
        if field.name == TIMESTAMP and field.type == pa.float64():
            field = field.with_type(TIMESTAMP_TYPE)
        if unit is not None and field.name == unit_column:
            field = field.with_metadata({**(field.metadata or {}), UNIT_FIELD_KEY: unit})
        fields.append(field)
    fields.append(pa.field(SEQ_COLUMN, pa.int64(), nullable=False))
    if unit is not None and unit_column in live.names:
        metadata = {**metadata, UNIT_KEY: unit}
    return pa.schema(fields, metadata=metadata)


def final_columns(
    table: pa.Table | pa.RecordBatch, seqs: np.ndarray, schema: pa.Schema
) -> list[pa.Array | pa.ChunkedArray]:
    """The columns of ``schema`` (:func:`final_schema`) for rows of the live schema whose
    batch numbers are ``seqs``; zero-copy but for the timestamps."""
    columns: list[pa.Array | pa.ChunkedArray] = []
    for field in schema:
        if field.name == SEQ_COLUMN:
            columns.append(pa.array(seqs, pa.int64()))
        elif field.type == TIMESTAMP_TYPE and table.schema.field(field.name).type != field.type:
            columns.append(seconds_to_ns(table.column(field.name)))
        else:
            columns.append(table.column(field.name))
    return columns


# -- reading finalized files -----------------------------------------------------------


def live_schema_of(schema: pa.Schema) -> pa.Schema:
    """The stream's schema as the ring has it, from a finalized file's schema."""
    metadata = schema.metadata or {}
    encoded = metadata.get(LIVE_SCHEMA_KEY.encode())
    if encoded is None:
        raise ValueError(
            f"not a finalized labd file: its schema has no {LIVE_SCHEMA_KEY} metadata "
            "(was it written by another tool?)"
        )
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))


def encode_live_schema(schema: pa.Schema) -> bytes:
    return base64.b64encode(schema.serialize().to_pybytes())


def to_live(table: pa.Table | pa.RecordBatch, live: pa.Schema) -> pa.RecordBatch:
    """Rows of a finalized file as a batch of the live schema (float seconds, ring types)."""
    columns = []
    for field in live:
        column: Any = table.column(field.name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        if field.name == TIMESTAMP and pa.types.is_timestamp(column.type):
            column = ns_to_seconds(column)
        elif pa.types.is_dictionary(field.type) and len(column.dictionary) != 1:
            # The ring's batches carry their own dictionary, in order of first use; a
            # row group's may hold more values: encode afresh so batches compare equal.
            column = column.dictionary_decode().dictionary_encode()
        if column.type != field.type:
            column = column.cast(field.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=live)


def _split_by_seq(
    table: pa.Table | pa.RecordBatch,
) -> Iterator[tuple[int, pa.Table | pa.RecordBatch]]:
    column = table.column(SEQ_COLUMN)
    seqs = np.asarray(column.to_numpy(), dtype=np.int64)
    if len(seqs) == 0:
        return
    cuts = np.flatnonzero(np.diff(seqs)) + 1
    starts = [0, *cuts.tolist()]
    ends = [*cuts.tolist(), len(seqs)]
    for start, end in zip(starts, ends, strict=True):
        yield int(seqs[start]), table.slice(start, end - start)


def _metadata_int(schema: pa.Schema, key: str) -> int | None:
    value = (schema.metadata or {}).get(key.encode())
    return int(value) if value is not None else None


def _group_batches(
    pieces: Iterator[pa.Table | pa.RecordBatch], live: pa.Schema, after: int
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Batches from pieces of a file in order; a batch cut across pieces is joined."""
    pending_seq = 0
    pending: list[pa.Table | pa.RecordBatch] = []

    def flush() -> pa.RecordBatch:
        if len(pending) == 1:
            return to_live(pending[0], live)
        tables = [p if isinstance(p, pa.Table) else pa.Table.from_batches([p]) for p in pending]
        return to_live(pa.concat_tables(tables), live)

    for piece in pieces:
        for seq, rows in _split_by_seq(piece):
            if seq <= after:
                continue
            if pending and seq != pending_seq:
                yield pending_seq, flush()
                pending = []
            pending_seq = seq
            pending.append(rows)
    if pending:
        yield pending_seq, flush()


def _parquet_pieces(
    path: Path, after: int, start: float, end: float
) -> tuple[pa.Schema, Iterator[pa.Table]]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(str(path), memory_map=True)
    schema = parquet.schema_arrow
    names = schema.names
    seq_index = names.index(SEQ_COLUMN)
    ts_index = names.index(TIMESTAMP) if TIMESTAMP in names else None

    def skip(group: int) -> bool:
        """A whole row group outside what is asked (its statistics say so)."""
        meta = parquet.metadata.row_group(group)
        seq_stats = meta.column(seq_index).statistics
        if seq_stats is not None and seq_stats.has_min_max and seq_stats.max <= after:
            return True
        if ts_index is None or (math.isinf(start) and math.isinf(end)):
            return False
        ts_stats = meta.column(ts_index).statistics
        if ts_stats is None or not ts_stats.has_min_max or ts_stats.null_count:
            return False
        first, last = _as_seconds(ts_stats.min), _as_seconds(ts_stats.max)
        return last < start - 1e-3 or first > end + 1e-3  # statistics may be in µs

    def pieces() -> Iterator[pa.Table]:
        for group in range(parquet.num_row_groups):
            if not skip(group):
                yield parquet.read_row_group(group)

    return schema, pieces()


def _as_seconds(value: Any) -> float:
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value) / _NS


def _ipc_pieces(path: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))

    def pieces() -> Iterator[pa.RecordBatch]:
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)

    return reader.schema, pieces()


def read_finalized_file(
    path: Path | str,
    *,
    after: int = 0,
    start: float = -math.inf,
    end: float = math.inf,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Yield ``(seq, batch)`` for the batches of a finalized file numbered above ``after``,
    each as the ring held it (live schema, float seconds).

    ``start``/``end`` only let whole row groups be skipped by their statistics; the caller
    still filters batches by time. Frames (``.arrow``) are memory-mapped, zero-copy.
    """
    path = Path(path)
    if path.suffix == PARQUET_SUFFIX:
        schema, pieces = _parquet_pieces(path, after, start, end)
    elif path.suffix == IPC_FILE_SUFFIX:
        schema, pieces = _ipc_pieces(path)
    else:
        raise ValueError(f"{path} is not a finalized file (they end in .parquet or .arrow)")
    last = _metadata_int(schema, LAST_SEQ_KEY)
    if last is not None and last <= after:
        return
    yield from _group_batches(pieces, live_schema_of(schema), after)


def batch_messages(seq: int, batch: pa.RecordBatch) -> pa.Buffer:
    """The IPC messages of ``batch`` as a ring slot holds them (dictionaries, then the
    record batch with ``labd.seq``): appended to a stream of its schema, they make it."""
    schema_length = len(batch.schema.serialize())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch, custom_metadata={SEQ_METADATA_KEY: str(seq)})
    whole = sink.getvalue()
    return whole.slice(schema_length, whole.size - schema_length - len(EOS_MARKER))
