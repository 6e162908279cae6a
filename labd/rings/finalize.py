"""Finalize closed segments: the live ``.arrows`` stream becomes a file every tool reads.

The persister writes each stream into an Arrow IPC *stream* because that survives a
SIGKILL (docs/live-data.md): but DuckDB, pandas' ``read_feather`` and polars'
``scan_ipc`` need a footer, and Parquet is what every tool reads. So when a segment is
closed -- rotated by size, its stream ended, the daemon stopped -- it is converted:

* readings, results, parameters -> ``part-N.parquet`` (zstd, row groups of up to 1 Mi
  rows, statistics per row group, which replay uses to skip what is outside its range);
* frames -> ``part-N.arrow``, the Arrow IPC *file* format, uncompressed: one record batch
  per frame, memory-mapped zero-copy by pyarrow and polars. The persister writes a frames
  segment laid out to become that file in place (:mod:`labd.rings.ipc_segment`), so
  finalizing it appends a footer and renames it instead of copying the pixels
  (bench/README.md, "Finalizing segments"; Parquet or compression cost several times a
  copy and gain little on camera noise). Frames with dictionary columns, and segments of
  labd before that layout, are copied into a new file.

In both, timestamps are ``timestamp[ns, tz=UTC]``, each row has its batch number in
``labd_seq``, and the schema metadata names the stream, run, daemon, kind and labd
version (:mod:`labd.rings.files`); a reading stream's one unit is also field metadata of
``value``. A conversion writes a hidden temporary file, syncs it, renames it into place
and only then removes the ``.arrows`` source, so a crash at any moment leaves the data
once in a complete file (and a leftover source next to its finalized copy is dropped); a
segment finished in place is renamed once its footer is on disk.

The :class:`Finalizer` runs this in its own thread, off the acquisition path, for the
segments its persister closes, and at start for the segments of daemons that were killed
(their ``.arrows`` files nobody holds a lock on), which then end at their last complete
batch.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labd.rings import files as F
from labd.rings import ipc_segment
from labd.rings.access import PRIVATE, FileAccess
from labd.rings.reader import _pid_alive
from labd.rings.stream_files import open_stream_file

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 1 << 20
ROW_GROUP_BYTES = 64 << 20
PARQUET_COMPRESSION = "zstd"


def labd_version() -> str:
    try:
        return importlib.metadata.version("labd")
    except importlib.metadata.PackageNotFoundError:
        from labd import __version__

        return __version__


def segment_metadata(stream: str, run_id: str, daemon_id: str, kind: str) -> dict[str, str]:
    """What every persisted file of a stream carries as schema metadata."""
    return {
        F.STREAM_KEY: stream,
        F.RUN_KEY: run_id,
        F.DAEMON_KEY: daemon_id,
        F.KIND_KEY: kind,
        F.VERSION_KEY: labd_version(),
    }


@dataclass(frozen=True)
class Finalized:
    """What :func:`finalize_segment` made of one segment."""

    source: Path
    path: Path | None  # None: the segment held no complete batch, and was removed
    batches: int
    rows: int
    bytes: int


def _kind_of(schema: pa.Schema) -> str:
    kind = (schema.metadata or {}).get(F.KIND_KEY.encode())
    if kind is not None:
        return str(kind.decode())
    return "frames" if "pixels" in schema.names else "readings"  # a file of labd < 0.2


def _live_schema(file_schema: pa.Schema) -> pa.Schema:
    """The ring's schema: the file's without the labd.* metadata the persister added."""
    rest = {k: v for k, v in (file_schema.metadata or {}).items() if not k.startswith(b"labd.")}
    return file_schema.with_metadata(rest) if rest else file_schema.remove_metadata()


def _one_unit(kind: str, table: pa.Table) -> str | None:
    """The segment's unit if all its rows have the same one (the ``unit`` column stays:
    Parquet keeps a constant column in a few bytes per row group, and files of one stream
    keep one schema, which globs across files need)."""
    if kind not in F.UNIT_OF or "unit" not in table.schema.names:
        return None
    column = table.column("unit")
    if column.null_count:
        return None
    unique = pc.unique(column)
    if len(unique) != 1:
        return None
    value = unique[0].as_py()
    return value if isinstance(value, str) else None


def _row_groups(
    rows: np.ndarray, nbytes: np.ndarray, max_rows: int, max_bytes: int
) -> Iterator[tuple[int, int]]:
    """(first batch, end batch) of each row group: whole batches, up to the limits."""
    start = 0
    group_rows = group_bytes = 0
    for i in range(len(rows)):
        if i > start and (group_rows + rows[i] > max_rows or group_bytes + nbytes[i] > max_bytes):
            yield start, i
            start, group_rows, group_bytes = i, 0, 0
        group_rows += int(rows[i])
        group_bytes += int(nbytes[i])
    if start < len(rows):
        yield start, len(rows)


def _write_parquet(
    tmp: Path,
    batches: list[tuple[int, pa.RecordBatch]],
    live: pa.Schema,
    metadata: dict[str, str],
    kind: str,
) -> int:
    import pyarrow.parquet as pq

    table = pa.Table.from_batches([b for _, b in batches], schema=live)  # zero-copy
    schema = F.final_schema(live, metadata, _one_unit(kind, table))
    rows = np.array([b.num_rows for _, b in batches], dtype=np.int64)
    nbytes = np.array([b.nbytes for _, b in batches], dtype=np.int64)
    seqs = np.repeat(np.array([s for s, _ in batches], dtype=np.int64), rows)
    offsets = np.concatenate([[0], np.cumsum(rows)])
    with pq.ParquetWriter(
        str(tmp), schema, compression=PARQUET_COMPRESSION, write_statistics=True
    ) as writer:
        for first, end in _row_groups(rows, nbytes, ROW_GROUP_ROWS, ROW_GROUP_BYTES):
            start, stop = int(offsets[first]), int(offsets[end])
            # One chunk and one dictionary per column: a row group written in one go.
            group = table.slice(start, stop - start).unify_dictionaries().combine_chunks()
            columns = F.final_columns(group, seqs[start:stop], schema)
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), stop - start)
    return int(rows.sum())


def _write_ipc_file(
    tmp: Path, batches: list[tuple[int, pa.RecordBatch]], live: pa.Schema, metadata: dict[str, str]
) -> int:
    schema = F.final_schema(live, metadata, None)
    rows = 0
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for seq, batch in batches:
            seqs = np.full(batch.num_rows, seq, dtype=np.int64)
            writer.write_batch(
                pa.RecordBatch.from_arrays(F.final_columns(batch, seqs, schema), schema=schema)
            )
            rows += batch.num_rows
    return rows


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # not read again soon
    finally:
        os.close(fd)


def finalize_segment(
    source: Path, *, access: FileAccess = PRIVATE, wait: bool = True
) -> Finalized | None:
    """Convert the closed segment ``source`` (``_part-N.arrows``) into its finalized file,
    then remove it.

    Returns None, doing nothing, when ``source`` is gone or someone holds its lock (a
    persister writing it; another daemon finalizing it); ``wait`` waits for the lock
    instead of giving up at once. Raises ``OSError`` if the file cannot be written (full
    disk): the source is then left as it was, readable and finalized at the next start.
    """
    source = Path(source)
    number = F.part_number(source)
    if number is None or not F.is_live(source):
        raise ValueError(f"{source} is not a live segment (they are named _part-N.arrows)")
    try:
        fd = os.open(source, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        try:
            if os.fstat(fd).st_ino != os.stat(source).st_ino:
                return None  # finalized and replaced meanwhile
        except FileNotFoundError:
            return None
        return _finalize_locked(source, number, os.fstat(fd), access)
    finally:
        os.close(fd)  # drops the lock


def _finalize_locked(
    source: Path, number: int, stat: os.stat_result, access: FileAccess
) -> Finalized:
    directory = source.parent
    for suffix in F.FINAL_SUFFIXES:
        done = F.final_path(directory, number, suffix)
        if done.exists():  # a finalizer stopped between its rename and this removal
            source.unlink()
            return Finalized(source, done, 0, 0, done.stat().st_size)
    opened = open_stream_file(source)
    if opened is not None and F.LIVE_SCHEMA_KEY.encode() in (opened[0].metadata or {}):
        return _finish_in_place(source, number, stat)  # a frames segment
    batches = [] if opened is None else [(s, b) for s, b in opened[1] if b.num_rows]
    if opened is None or not batches:
        return _remove_empty(source)
    file_schema = opened[0]
    kind = _kind_of(file_schema)
    metadata = {k.decode(): v.decode() for k, v in (file_schema.metadata or {}).items()}
    metadata.setdefault(F.KIND_KEY, kind)
    live = _live_schema(file_schema)
    metadata[F.LIVE_SCHEMA_KEY] = F.encode_live_schema(live).decode()
    metadata[F.FIRST_SEQ_KEY] = str(batches[0][0])
    metadata[F.LAST_SEQ_KEY] = str(batches[-1][0])
    metadata[F.BATCHES_KEY] = str(len(batches))
    suffix = F.IPC_FILE_SUFFIX if kind == "frames" else F.PARQUET_SUFFIX
    final = F.final_path(directory, number, suffix)
    tmp = directory / f".{final.name}.{os.getpid()}.tmp"  # hidden: no reader lists it
    os.close(access.create_file(tmp, os.O_WRONLY | os.O_TRUNC))
    try:
        if suffix == F.PARQUET_SUFFIX:
            rows = _write_parquet(tmp, batches, live, metadata, kind)
        else:
            rows = _write_ipc_file(tmp, batches, live, metadata)
        _sync_file(tmp)
        # The data's time, not the conversion's: retention removes the oldest data first.
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.rename(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(directory)  # the new name is durable before the old file goes
    source.unlink()
    _sync_dir(directory)
    return Finalized(source, final, len(batches), rows, final.stat().st_size)


def _remove_empty(source: Path) -> Finalized:
    source.unlink()
    _sync_dir(source.parent)
    return Finalized(source, None, 0, 0, 0)


def _finish_in_place(source: Path, number: int, stat: os.stat_result) -> Finalized:
    """A segment written to become an Arrow IPC file: a footer, and a new name."""
    done = ipc_segment.finish(source)
    if done is None:
        return _remove_empty(source)
    # The data's time, not the conversion's: retention removes the oldest data first.
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    final = F.final_path(source.parent, number, F.IPC_FILE_SUFFIX)
    os.rename(source, final)
    _sync_dir(source.parent)
    return Finalized(source, final, done.batches, done.rows, done.size)


class Finalizer:
    """A thread that finalizes closed segments: those submitted, then, at start, those
    left by daemons that did not finish them (found under ``recover_dir``)."""

    def __init__(self, *, access: FileAccess = PRIVATE, recover_dir: Path | None = None) -> None:
        self._access = access
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self.recovered = threading.Event()
        """Set once the segments left by earlier daemons were looked for and finalized."""
        self.finalized: list[Finalized] = []
        self.errors: list[str] = []
        self._recover_dir = recover_dir
        self._thread = threading.Thread(target=self._run, name="finalize segments", daemon=True)
        self._thread.start()

    def submit(self, segment: Path) -> None:
        """Finalize ``segment`` (closed by its writer) as soon as the thread gets to it."""
        self._queue.put(segment)

    def close(self) -> None:
        """Finalize what was submitted, leave the recovery of old segments to the next
        start, and stop the thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        try:
            if self._recover_dir is not None:
                self._recover(self._recover_dir)
        finally:
            self.recovered.set()
        while (segment := self._queue.get()) is not None:
            self._finalize(segment, wait=True)

    def _recover(self, data_dir: Path) -> None:
        if not data_dir.is_dir():
            return
        try:
            for temp in F.temp_files(data_dir):
                pid = F.temp_file_pid(temp)
                if pid is not None and pid != os.getpid() and not _pid_alive(pid):
                    temp.unlink(missing_ok=True)  # a finalizer or persister killed midway
            segments = list(F.live_segments(data_dir))
        except OSError as exc:
            log.error("cannot look for unfinished segments in %s: %s", data_dir, exc)
            return
        for segment in segments:
            if self._stopping.is_set():
                return  # the next start goes on with the rest
            done = self._finalize(segment, wait=False)
            if done is not None:
                log.info(
                    "finalized %s, left unfinished by a daemon that stopped: %d batches up to "
                    "its last complete one, in %s",
                    segment,
                    done.batches,
                    done.path or "(none: it held no complete batch, removed)",
                )

    def _finalize(self, segment: Path, *, wait: bool) -> Finalized | None:
        try:
            done = finalize_segment(segment, access=self._access, wait=wait)
        except Exception as exc:
            message = (
                f"cannot finalize {segment}: {exc}. It stays readable as it is (replay and "
                "pyarrow read it) and is finalized at the next start; free disk space if it is full"
            )
            log.error("%s", message)
            self.errors.append(message)
            return None
        if done is not None:
            self.finalized.append(done)
        return done


def finalize_all(data_dir: Path, *, access: FileAccess = PRIVATE) -> list[Finalized]:
    """Finalize every unfinished segment under ``data_dir`` nobody is writing (e.g. to
    make the files of a daemon that was killed ready for tools without starting it)."""
    done = []
    for segment in F.live_segments(data_dir):
        result = finalize_segment(segment, access=access, wait=False)
        if result is not None:
            done.append(result)
    return done
