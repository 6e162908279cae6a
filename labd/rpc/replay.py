"""Recorded data over RPC: ``Lab.replay`` (a pull cursor of past batches) and ``Lab.dataInfo``.

A replay may span gigabytes (minutes of 8 MiB frames), so it never travels as one
message: the client pulls chunks of at most the size it asks for, each one Arrow IPC
stream of whole batches carrying their numbers (``labd.seq``), exactly like the
persisted files. Where a batch comes from -- the ring while it is still there, the
``.arrows`` files once it has been overwritten -- is :func:`labd.rings.replay`'s concern;
this module only cuts its output into chunks.

Reading files and copying out of the ring is done in a worker thread, one chunk at a
time, so a replay of a long range never stalls the daemon's event loop (and with it the
live pushes of every other client).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa
import trio

from labd.aio import to_trio
from labd.rings import Persister, RingReader, RingSet, replay
from labd.rings.layout import SEQ_METADATA_KEY
from labd.rpc import schema
from labd.rpc.wire import wire_errors

if TYPE_CHECKING:
    from labd.rpc.lab import Session

_s: Any = schema.load()

MIN_CHUNK_BYTES = 64 << 10
"""A smaller ``maxBytes`` is raised to this: tiny chunks only multiply round trips."""


@runtime_checkable
class RecordedData(Protocol):
    """What a daemon offers for replay (:class:`labd.daemon.Daemon` is one)."""

    daemon_id: str
    run_id: str
    rings: RingSet | None
    persister: Persister | None


class ReplayCursorServer(_s.ReplayCursor.Server):  # type: ignore[misc]
    """One replay: a generator of ``(seq, batch)`` advanced chunk by chunk in a thread."""

    def __init__(
        self, session: Session, schema: pa.Schema, batches: Iterator[tuple[int, pa.RecordBatch]]
    ) -> None:
        self._session = session
        self._schema = schema
        self._batches = batches
        self._carry: tuple[int, pa.RecordBatch] | None = None  # did not fit the last chunk
        self._done = False
        # Pipelined next() calls must take their chunks in the order they were sent. They
        # arrive in order on the asyncio side, whose lock is FIFO; Trio would not do:
        # it deliberately runs tasks spawned together in random order.
        self._lock = asyncio.Lock()

    @wire_errors
    async def next(self, maxBytes: int, _context: Any, **_: Any) -> None:
        async with self._lock:
            if self._done:
                chunk, done = b"", True
            else:
                chunk, done = await to_trio(self._session.nursery, self._next_chunk, maxBytes)
        _context.results.chunk = chunk
        _context.results.done = done

    async def _next_chunk(self, max_bytes: int) -> tuple[bytes, bool]:
        return await trio.to_thread.run_sync(self._fill, max(max_bytes, MIN_CHUNK_BYTES))

    def _fill(self, max_bytes: int) -> tuple[bytes, bool]:
        """Whole batches up to ``max_bytes`` (at least one), as one IPC stream."""
        sink = pa.BufferOutputStream()
        size = 0
        with pa.ipc.new_stream(sink, self._schema) as writer:
            while True:
                item = self._carry or next(self._batches, None)
                self._carry = None
                if item is None:
                    self._done = True
                    break
                seq, batch = item
                if size and size + batch.nbytes > max_bytes:
                    self._carry = item
                    break
                writer.write_batch(batch, custom_metadata={SEQ_METADATA_KEY: str(seq)})
                size += batch.nbytes
        return (sink.getvalue().to_pybytes() if size else b""), self._done


def open_replay(
    session: Session, data: RecordedData | None, stream: str, start: float, end: float
) -> tuple[ReplayCursorServer, bytes]:
    """A cursor over ``stream``'s batches in [start, end], and the stream's schema (IPC).

    Raises :class:`~labd.errors.UnknownStream` for a stream the daemon does not have.
    """
    hub_stream = session.services.streams.stream(stream)
    ring = directory = None
    if data is not None and data.rings is not None and stream in data.rings.writers:
        ring = RingReader(data.rings.writers[stream].path)
    if data is not None and data.persister is not None:
        directory = data.persister.stream_directory(stream)
    batches = _closing(replay(start, end, ring=ring, directory=directory), ring)
    schema_bytes = hub_stream.schema.serialize().to_pybytes()
    return ReplayCursorServer(session, hub_stream.schema, batches), schema_bytes


def _closing(
    batches: Iterator[tuple[int, pa.RecordBatch]], ring: RingReader | None
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``batches``, unmapping the ring once they are exhausted (or the cursor is dropped)."""
    try:
        yield from batches
    finally:
        if ring is not None:
            ring.close()


def fill_data_info(struct: Any, data: RecordedData | None) -> None:
    """``DataInfo``: enough for a local client to attach the rings, and persistence health."""
    struct.host = socket.gethostname()
    if data is None:
        return
    struct.daemonId = data.daemon_id
    struct.runId = data.run_id
    rings = data.rings
    if rings is not None:
        struct.ringRoot = str(rings.root)
        writers = list(rings.writers.values())
        infos = struct.init("rings", len(writers))
        for info, writer in zip(infos, writers, strict=True):
            info.stream = writer.stream
            info.kind = writer.kind
            info.path = str(writer.path)
            info.capacity = writer.layout.slot_count
            info.writeSeq = writer.write_seq
            info.retention = writer.plan.retention_s
    persister = data.persister
    if persister is not None:
        struct.dataDir = str(persister.directory)
        statuses = persister.status()
        infos = struct.init("persisted", len(statuses))
        for info, status in zip(infos, statuses, strict=True):
            info.stream = status.stream
            info.directory = str(status.directory)
            info.file = str(status.file) if status.file is not None else ""
            info.batches = status.batches
            info.bytes = status.bytes
            info.lost = status.lost
            info.lastSeq = status.last_seq
            info.error = status.error or ""
