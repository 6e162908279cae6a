"""Frames segments: an Arrow IPC stream on disk that becomes an Arrow IPC file in place.

Copying a closed segment of frames into a new file costs the disk as much again as
writing it did (bench/README.md, "Finalizing segments"). So a frames segment is written
from the start in its finalized schema (UTC timestamps, ``labd_seq``, the labd.*
metadata and the live schema, :func:`labd.rings.files.final_schema`) and laid out so
that finalizing it writes a few kilobytes and renames it:

* the segment starts with its schema message, padded by 8 bytes plus room for the
  metadata only known at the end (first and last batch number, batch count); then each
  batch's message, exactly as :class:`Encoder` made it, whose pixel buffer is the ring
  slot's memory (no copy in Python). A live segment is a plain Arrow IPC stream: a
  SIGKILL loses at most the batch being written, and ``pa.ipc.open_stream`` reads it.
* :func:`finish` appends the end-of-stream marker and the file footer (the schema and
  where each batch is), then overwrites the padded schema message with the file magic
  ``ARROW1`` followed by the final schema message filling the same bytes: the result is
  a valid Arrow IPC file (magic, stream, footer, magic) with every batch where it was.

The footer is written here rather than by pyarrow because pyarrow's file writer can only
write batches it serialises itself; it is the ``Footer`` table of Arrow's ``File.fbs``,
whose ``schema`` points into the schema message's own flatbuffer, copied unchanged.
Streams with dictionary columns keep the ring's bytes (Arrow files cannot replace a
dictionary) and are finalized by a copy (:mod:`labd.rings.finalize`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from labd.rings import files as F
from labd.rings.layout import EOS_MARKER, SEQ_METADATA_KEY

_END_KEYS = (F.FIRST_SEQ_KEY, F.LAST_SEQ_KEY, F.BATCHES_KEY)
_WIDEST = str(2**63 - 1)
_METADATA_V5 = 4


def in_place(schema: pa.Schema, kind: str) -> bool:
    """Whether segments of this stream are written to become IPC files in place."""
    return kind == "frames" and not any(pa.types.is_dictionary(f.type) for f in schema)


def segment_schema(live: pa.Schema, metadata: dict[str, str]) -> pa.Schema:
    """The schema an in-place segment is written in: the finalized one, with the live
    schema in its metadata (so readers give back the ring's batches)."""
    with_live = {**metadata, F.LIVE_SCHEMA_KEY: F.encode_live_schema(live).decode()}
    return F.final_schema(live, with_live, None)


def _padded(message: bytes, size: int) -> bytes:
    """An encapsulated IPC message grown to ``size`` bytes: zeros after the flatbuffer,
    counted in its metadata length (readers take a flatbuffer's root from its start)."""
    extra = size - len(message)
    if extra < 0 or extra % 8:
        raise ValueError(f"cannot pad a message of {len(message)} bytes to {size}")
    (length,) = struct.unpack_from("<i", message, 4)
    return message[:4] + struct.pack("<i", length + extra) + message[8:] + bytes(extra)


def header(schema: pa.Schema) -> bytes:
    """The first bytes of an in-place segment: its schema message, padded so that the
    file magic and the final schema message (:func:`finish`) fit in the same bytes."""
    widest = schema.with_metadata({**(schema.metadata or {}), **dict.fromkeys(_END_KEYS, _WIDEST)})
    room = len(widest.serialize()) + len(F.IPC_FILE_MAGIC)
    return _padded(schema.serialize().to_pybytes(), room)


class _Parts:
    """A sink for pyarrow's IPC writer that keeps what it is given, body buffers as the
    zero-copy views pyarrow passes (views of the ring slot)."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.closed = False

    def write(self, data: Any) -> int:
        self.parts.append(data)
        return len(data) if isinstance(data, bytes) else int(data.size)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Encoder:
    """Makes the message of each batch in an in-place segment's schema."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._sink = _Parts()
        # One writer for every batch: a stream writer keeps no positions. Its schema
        # message, which it writes with the first batch, is not used (:func:`header` is
        # written instead): an empty batch takes it.
        self._writer = pa.ipc.new_stream(pa.PythonFile(self._sink, mode="w"), schema)
        self._writer.write_batch(pa.RecordBatch.from_pylist([], schema=schema))

    def parts(self, seq: int, batch: pa.RecordBatch) -> list[Any]:
        """The bytes of batch ``seq``'s message, in pieces to write in order."""
        seqs = np.full(batch.num_rows, seq, dtype=np.int64)
        final = pa.RecordBatch.from_arrays(
            F.final_columns(batch, seqs, self._schema), schema=self._schema
        )
        self._sink.parts = []
        self._writer.write_batch(final, custom_metadata={SEQ_METADATA_KEY: str(seq)})
        return self._sink.parts


def _footer(schema_message: bytes, blocks: list[tuple[int, int, int]]) -> bytes:
    """Arrow's ``Footer`` flatbuffer: version V5, the schema of ``schema_message``, no
    dictionaries, and one ``Block`` (offset, metadata length, body length) per batch."""
    (length,) = struct.unpack_from("<i", schema_message, 4)
    message = schema_message[8 : 8 + length]
    root = struct.unpack_from("<I", message, 0)[0]
    vtable = root - struct.unpack_from("<i", message, root)[0]
    # Message fields: version, header_type, header (the Schema table), bodyLength, ...
    header_field = struct.unpack_from("<H", message, vtable + 4 + 2 * 2)[0]
    at = root + header_field
    schema_table = at + struct.unpack_from("<I", message, at)[0]
    embedded = 56 + 24 * len(blocks)  # where the message's flatbuffer is copied to
    out = bytearray()
    out += struct.pack("<I4x", 24)  # root: the Footer table at 24
    out += struct.pack("<6H4x", 12, 20, 4, 8, 12, 16)  # its vtable, at 8
    out += struct.pack("<ih2x", 24 - 8, _METADATA_V5)  # the table: vtable, version
    out += struct.pack("<I", embedded + schema_table - 32)  # schema (at 32)
    out += struct.pack("<I", 44 - 36)  # dictionaries (at 36): the empty vector at 44
    out += struct.pack("<I", 52 - 40)  # recordBatches (at 40): the vector at 52
    out += struct.pack("<I4xI", 0, len(blocks))
    for block in blocks:
        out += struct.pack("<qi4xq", *block)
    assert len(out) == embedded
    return bytes(out + message)


@dataclass(frozen=True)
class Finished:
    """What :func:`finish` found in a segment and wrote into it."""

    batches: int
    rows: int
    first_seq: int
    last_seq: int
    size: int


def finish(path: Path) -> Finished | None:
    """Make the in-place segment ``path`` an Arrow IPC file, up to its last complete
    batch; None when it holds no complete batch (nothing is written then).

    Safe to repeat after a crash at any point: the batches are not moved, and whether
    the magic or the footer reached the disk, the stream after the magic is read again.
    """
    source = pa.memory_map(str(path), "r")
    try:
        whole = source.read_buffer()
        magic = len(F.IPC_FILE_MAGIC)
        start = magic if whole[:magic] == F.IPC_FILE_MAGIC else 0  # finished before
        source.seek(start)
        reader = pa.ipc.open_stream(source)
        schema = reader.schema
        first_batch = pos = source.tell()
        blocks: list[tuple[int, int, int]] = []
        seqs: list[int] = []
        rows = 0
        while True:
            try:
                batch, metadata = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            except (OSError, pa.ArrowInvalid):
                break  # a truncated last message: the writer died while writing it
            end = source.tell()
            (length,) = struct.unpack_from("<i", whole, pos + 4)
            blocks.append((pos, 8 + length, end - pos - 8 - length))
            seqs.append(int(metadata[SEQ_METADATA_KEY]))
            rows += batch.num_rows
            pos = end
        del reader, whole
    finally:
        source.close()
    if not blocks:
        return None
    ends = {F.FIRST_SEQ_KEY: str(seqs[0]), F.LAST_SEQ_KEY: str(seqs[-1])}
    ends[F.BATCHES_KEY] = str(len(blocks))
    metadata = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    final = schema.with_metadata({**metadata, **ends})
    message = final.serialize().to_pybytes()
    magic_and_schema = F.IPC_FILE_MAGIC + _padded(message, first_batch - len(F.IPC_FILE_MAGIC))
    footer = _footer(message, blocks)
    tail = EOS_MARKER + footer + struct.pack("<i", len(footer)) + F.IPC_FILE_MAGIC[:6]
    fd = os.open(path, os.O_WRONLY)
    try:
        _pwrite_all(fd, tail, pos)
        os.ftruncate(fd, pos + len(tail))  # a torn last batch goes
        _pwrite_all(fd, magic_and_schema, 0)
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return Finished(len(blocks), rows, seqs[0], seqs[-1], pos + len(tail))


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
