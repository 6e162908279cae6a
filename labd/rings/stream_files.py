"""Read the ``.arrows`` files the persister writes: whole, after a crash, or while growing.

A file is one Arrow IPC *stream*: the schema, then for each batch its messages exactly as
they were in the ring slot (a dictionary message, then the record batch message, which
carries the batch number as custom metadata ``labd.seq``), and an end-of-stream marker
once the file is finished. Plain ``pa.ipc.open_stream(path)`` reads it; after a crash the
file ends inside a message, and pyarrow then raises ``OSError`` or ``ArrowInvalid`` there
instead of ending the iteration -- :func:`read_stream_file` stops there quietly.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from labd.rings.layout import SEQ_METADATA_KEY


def _batches(reader: pa.ipc.RecordBatchStreamReader) -> Iterator[tuple[int, pa.RecordBatch]]:
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            return
        except (OSError, pa.ArrowInvalid):
            return  # a truncated last message: the writer died while writing it
        seq = int(metadata[SEQ_METADATA_KEY]) if metadata and SEQ_METADATA_KEY in metadata else 0
        yield seq, batch


def read_stream_file(path: Path | str) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Yield ``(seq, batch)`` for every complete batch of the file, zero-copy (mmap).

    A truncated tail (a crash while writing) ends the iteration; ``seq`` is 0 for files
    not written by labd.
    """
    source = pa.memory_map(str(path), "r")
    try:
        reader = pa.ipc.open_stream(source)
    except (OSError, pa.ArrowInvalid):
        return  # not even the schema was written completely
    yield from _batches(reader)


def read_stream_file_messages(path: Path | str) -> Iterator[tuple[int, pa.RecordBatch, pa.Buffer]]:
    """Like :func:`read_stream_file`, with each batch's stored messages (zero-copy).

    The messages are the file's bytes of the batch -- its dictionaries, then the record
    batch carrying ``labd.seq`` -- as the ring slot held them: appended unchanged to an
    IPC stream of the same schema they make that batch again, with no re-serialising.
    """
    source = pa.memory_map(str(path), "r")
    whole = source.read_buffer()
    source.seek(0)
    try:
        reader = pa.ipc.open_stream(source)
    except (OSError, pa.ArrowInvalid):
        return
    # The stream reader reads messages only as each batch needs them (no read-ahead), so
    # the file position before and after a batch bounds exactly its messages.
    start = source.tell()
    for seq, batch in _batches(reader):
        end = source.tell()
        yield seq, batch, whole.slice(start, end - start)
        start = end


class _GrowingFile(io.RawIOBase):
    """A file whose reads wait for the writer: exact-length reads, EOF after idling."""

    def __init__(self, path: Path, poll_s: float, idle_timeout_s: float | None) -> None:
        self._f = path.open("rb", buffering=0)
        self._poll_s = poll_s
        self._idle_timeout_s = idle_timeout_s

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise io.UnsupportedOperation("a growing file has no end to read to")
        parts: list[bytes] = []
        missing = size
        idle_since = time.monotonic()
        while missing:
            chunk = self._f.read(missing)
            if chunk:
                parts.append(chunk)
                missing -= len(chunk)
                idle_since = time.monotonic()
                continue
            idle = time.monotonic() - idle_since
            if self._idle_timeout_s is not None and idle >= self._idle_timeout_s:
                break
            time.sleep(self._poll_s)
        return b"".join(parts)

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
