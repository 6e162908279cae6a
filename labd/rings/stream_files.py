"""Read the ``.arrows`` files the persister writes: whole, after a crash, or while growing.

A file is one Arrow IPC *stream*: the schema (with the stream's name, run, daemon, kind
and labd version as metadata, :mod:`labd.rings.files`), then for each batch its messages
(a dictionary message, then the record batch message, which carries the batch number as
custom metadata ``labd.seq``), and an end-of-stream marker once the file is finished.
Most streams' messages are exactly those of the ring slot; a frames segment holds each
batch in the finalized schema (UTC timestamps, ``labd_seq``; its schema metadata has the
live one), which these functions convert back (:mod:`labd.rings.ipc_segment`). Plain
``pa.ipc.open_stream(path)`` reads either; after a crash the file ends inside a message,
and pyarrow then raises ``OSError`` or ``ArrowInvalid`` there instead of ending the
iteration -- :func:`read_stream_file` stops there quietly.

Closed segments are finalized into Parquet or Arrow IPC files (:mod:`labd.rings.finalize`);
:func:`read_stream_file` and :func:`read_stream_file_messages` read those too, giving the
batches as the ring held them, so a caller need not care which kind a file is.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from labd.rings.files import (
    FINAL_SUFFIXES,
    IPC_FILE_MAGIC,
    LIVE_SCHEMA_KEY,
    batch_messages,
    live_schema_of,
    read_finalized_file,
    to_live,
)
from labd.rings.layout import SEQ_METADATA_KEY


def _batches(reader: pa.ipc.RecordBatchStreamReader) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The complete batches of a stream as the ring held them."""
    metadata = reader.schema.metadata or {}
    live = live_schema_of(reader.schema) if LIVE_SCHEMA_KEY.encode() in metadata else None
    while True:
        try:
            batch, custom = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            return
        except (OSError, pa.ArrowInvalid):
            return  # a truncated last message: the writer died while writing it
        seq = int(custom[SEQ_METADATA_KEY]) if custom and SEQ_METADATA_KEY in custom else 0
        if live is not None:  # a frames segment, in the finalized schema
            yield seq, to_live(batch, live)
        else:  # the file's schema carries labd.* metadata; the ring's batches carry none
            yield seq, batch.replace_schema_metadata(None) if metadata else batch


def _open(path: Path | str) -> tuple[pa.MemoryMappedFile, pa.ipc.RecordBatchStreamReader] | None:
    """The file mapped, and a stream reader of it: from its start, or after the magic of
    a frames segment that was being finished into an IPC file when its daemon died."""
    source = pa.memory_map(str(path), "r")
    if source.read(len(IPC_FILE_MAGIC)) != IPC_FILE_MAGIC:
        source.seek(0)
    try:
        return source, pa.ipc.open_stream(source)
    except (OSError, pa.ArrowInvalid):
        return None


def read_stream_file(path: Path | str) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Yield ``(seq, batch)`` for every complete batch of the file, zero-copy (mmap).

    A truncated tail (a crash while writing) ends the iteration; ``seq`` is 0 for files
    not written by labd. A finalized file (``.parquet``, ``.arrow``) gives its batches as
    the ring held them (:func:`labd.rings.files.read_finalized_file`).
    """
    if Path(path).suffix in FINAL_SUFFIXES:
        yield from read_finalized_file(path)
        return
    opened = open_stream_file(path)
    if opened is not None:
        yield from opened[1]


def open_stream_file(
    path: Path | str,
) -> tuple[pa.Schema, Iterator[tuple[int, pa.RecordBatch]]] | None:
    """The schema of a ``.arrows`` file (with its labd.* metadata) and its complete
    batches, as :func:`read_stream_file`; None when not even the schema is complete."""
    opened = _open(path)
    if opened is None:
        return None
    return opened[1].schema, _batches(opened[1])


def read_stream_file_messages(path: Path | str) -> Iterator[tuple[int, pa.RecordBatch, pa.Buffer]]:
    """Like :func:`read_stream_file`, with each batch's stored messages (zero-copy).

    The messages are the file's bytes of the batch -- its dictionaries, then the record
    batch carrying ``labd.seq`` -- as the ring slot held them: appended unchanged to an
    IPC stream of the same schema they make that batch again, with no re-serialising.
    A finalized file, and a frames segment (finalized schema), have no stored messages:
    their batches are serialised again.
    """
    if Path(path).suffix in FINAL_SUFFIXES:
        for seq, batch in read_finalized_file(path):
            yield seq, batch, batch_messages(seq, batch)
        return
    opened = _open(path)
    if opened is None:
        return
    source, reader = opened
    if LIVE_SCHEMA_KEY.encode() in (reader.schema.metadata or {}):  # not the ring's messages
        for seq, batch in _batches(reader):
            yield seq, batch, batch_messages(seq, batch)
        return
    whole = pa.memory_map(str(path), "r").read_buffer()
    # The stream reader reads messages only as each batch needs them (no read-ahead), so
    # the file position before and after a batch bounds exactly its messages.
    start = source.tell()
    for seq, batch in _batches(reader):
        end = source.tell()
        yield seq, batch, whole.slice(start, end - start)
        start = end


_CONTINUATION = b"\xff\xff\xff\xff"
_ZEROS = bytes(4)


class _GrowingFile(io.RawIOBase):
    """A file whose reads wait for the writer: exact-length reads, EOF after idling.

    Where a message should start, zeros are the padding of a frames segment's last disk
    block (:mod:`labd.rings.persister`), not yet overwritten by the next batch: waited
    for like the end of the file (the persister's own end marker has its continuation)."""

    def __init__(self, path: Path, poll_s: float, idle_timeout_s: float | None) -> None:
        self._f = path.open("rb", buffering=0)
        self._poll_s = poll_s
        self._idle_timeout_s = idle_timeout_s
        self._last = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise io.UnsupportedOperation("a growing file has no end to read to")
        parts: list[bytes] = []
        missing = size
        idle_since = time.monotonic()
        while missing:
            at = self._f.tell()
            chunk = self._f.read(missing)
            if size == 4 and chunk == _ZEROS and self._last != _CONTINUATION:
                self._f.seek(at)  # padding: the next batch will be written here
                chunk = b""
            if chunk:
                parts.append(chunk)
                missing -= len(chunk)
                idle_since = time.monotonic()
                continue
            idle = time.monotonic() - idle_since
            if self._idle_timeout_s is not None and idle >= self._idle_timeout_s:
                break
            time.sleep(self._poll_s)
        data = b"".join(parts)
        self._last = data
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


def tail_stream_file(
    path: Path | str, *, poll_s: float = 0.02, idle_timeout_s: float | None = None
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Yield ``(seq, batch)`` from a file that is still being written, as batches land.

    Ends at the end-of-stream marker (the persister finished or rotated the file), or
    when the file has not grown for ``idle_timeout_s`` (the writer died).
    """
    with _GrowingFile(Path(path), poll_s, idle_timeout_s) as source:
        try:
            reader = pa.ipc.open_stream(source)
        except (OSError, pa.ArrowInvalid):
            return
        yield from _batches(reader)
