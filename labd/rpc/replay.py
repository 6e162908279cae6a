"""Recorded data over RPC: ``Lab.replay`` (a pull cursor of past batches) and ``Lab.dataInfo``.

A replay may span gigabytes (minutes of 8 MiB frames), so it never travels as one
message: the client pulls chunks of at most the size it asks for (and at most
:data:`MAX_CHUNK_BYTES`), each one Arrow IPC
stream of whole batches carrying their numbers (``labd.seq``), exactly like the
persisted files. Where a batch comes from -- the ring while it is still there, the
``.arrows`` files once it has been overwritten -- is :func:`labd.rings.replay_raw`'s
concern; this module only cuts its output into chunks.

A batch is sent as stored: the IPC messages of its ring slot or its file are copied once,
straight into the reply, never decoded and encoded again. Picking batches (reading
files) and copying them is done in a worker thread, so a replay of a long range never
stalls the daemon's event loop (and with it the live pushes of every other client).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import pyarrow as pa
import trio

from labd.aio import to_trio
from labd.contract import schema
from labd.contract.errors import wire_errors
from labd.contract.runs import RunRecord
from labd.errors import UnknownStream
from labd.rings import (
    Persister,
    RawBatch,
    RingReader,
    RingSet,
    persisted_files,
    read_stream_file,
    replay_raw,
    stream_directory,
)
from labd.rings.layout import EOS_MARKER
from labd.rpc import trim

if TYPE_CHECKING:
    from labd.rings.retention import Retention
    from labd.rpc.session import Session
    from labd.runs import RunBook

_s: Any = schema.load()
T = TypeVar("T")

MIN_CHUNK_BYTES = 64 << 10
"""A smaller ``maxBytes`` (0 included) is raised to this: tiny chunks only multiply round
trips."""
MAX_CHUNK_BYTES = 64 << 20
"""A larger ``maxBytes`` is lowered to this, whatever the client asks: a chunk costs the
daemon about twice its size while it is sent (the reply, pycapnp's copy for the socket).
A single batch bigger than this still goes, alone."""
TRIM_AFTER_BYTES = 1 << 20
"""A chunk this big is given back to the system soon after it was sent (a cursor may be
dropped at any chunk, so no chunk waits for the replay's end)."""


@runtime_checkable
class RecordedData(Protocol):
    """What a daemon offers for replay (:class:`labd.daemon.Daemon` is one)."""

    daemon_id: str
    run_id: str
    rings: RingSet | None
    persister: Persister | None
    retention: Retention | None
    runs: RunBook


class ReplayCursorServer(_s.ReplayCursor.Server):  # type: ignore[misc]
    """One replay, advanced chunk by chunk: batches picked in a thread, then their stored
    bytes copied (also in a thread) straight into the reply's ``chunk``.

    A ring batch is checked after it was copied; if the writer overwrote it meanwhile, the
    chunk ends before it and the replay starts again after the last good batch (the
    overwritten one is in the files by then).

    ``seqs``: only the batches numbered ``first`` to ``last`` (None: to the newest), for
    the replay of a run (``Lab.replayRun``).
    """

    def __init__(
        self,
        session: Session,
        schema_bytes: bytes,
        start: float,
        end: float,
        ring: RingReader | None,
        directory: Path | None,
        seqs: tuple[int, int | None] = (1, None),
    ) -> None:
        self._session = session
        self._seqs = seqs
        self._schema_bytes = schema_bytes
        self._range = (start, end)
        self._ring = ring
        self._directory = directory
        self._batches = self._replay_after(0)
        self._carry: RawBatch | None = None  # did not fit the last chunk
        self._last_sent = 0
        self._done = False
        # Pipelined next() calls must take their chunks in the order they were sent. They
        # arrive in order on the asyncio side, whose lock is FIFO; Trio would not do:
        # it deliberately runs tasks spawned together in random order.
        self._lock = asyncio.Lock()

    def _replay_after(self, seq: int) -> Iterator[RawBatch]:
        start, end = self._range
        first, last = self._seqs
        after = max(seq, first - 1)
        batches = replay_raw(start, end, ring=self._ring, directory=self._directory, after=after)
        if last is None:
            return batches
        return itertools.takewhile(lambda raw: raw.seq <= last, batches)

    @wire_errors
    async def next(self, maxBytes: int, _context: Any, **_: Any) -> None:
        async with self._lock:
            batches = [] if self._done else await self._in_thread(self._pick, maxBytes)
            if batches:
                size = len(self._schema_bytes) + sum(b.messages.size for b in batches)
                if size >= TRIM_AFTER_BYTES:
                    trim.release_soon()  # the reply is sent within trim.DELAY_S
                _context.results.init("chunk", size + len(EOS_MARKER))
                chunk = _context.results.get_data_as_view("chunk")
                await self._in_thread(self._copy, chunk, batches)
            if self._done:
                self._close()
        _context.results.done = self._done

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await to_trio(self._session.nursery, trio.to_thread.run_sync, fn, *args)

    def _pick(self, max_bytes: int) -> list[RawBatch]:
        """Whole batches for a chunk of up to ``max_bytes`` within the daemon's bounds
        (at least one, however big)."""
        max_bytes = min(max(max_bytes, MIN_CHUNK_BYTES), MAX_CHUNK_BYTES)
        picked: list[RawBatch] = []
        size = len(self._schema_bytes) + len(EOS_MARKER)
        while True:
            raw = self._carry or next(self._batches, None)
            self._carry = None
            if raw is None:
                self._done = True
                return picked
            if picked and size + raw.messages.size > max_bytes:
                self._carry = raw
                return picked
            picked.append(raw)
            size += raw.messages.size

    def _copy(self, chunk: memoryview, batches: list[RawBatch]) -> None:
        """Schema, each batch's messages, end of stream: one IPC stream in ``chunk``."""
        # numpy copies without the GIL: the event loop keeps serving while frames are copied.
        out = np.frombuffer(chunk, np.uint8)
        pos = _put(out, 0, self._schema_bytes)
        for raw in batches:
            end = _put(out, pos, raw.messages)
            if not raw.still_valid():
                # End the stream before it (the client ignores what follows the marker)
                # and replay again from there: the overwritten batch is on disk by now.
                self._batches = self._replay_after(self._last_sent)
                self._carry = None
                self._done = False
                break
            pos, self._last_sent = end, raw.seq
        _put(out, pos, EOS_MARKER)

    def _close(self) -> None:
        # A cursor dropped before the end leaves its ring to the garbage collector.
        if self._ring is not None:
            self._ring.close()
            self._ring = None


def _put(out: np.ndarray, pos: int, data: bytes | pa.Buffer) -> int:
    end = pos + len(data) if isinstance(data, bytes) else pos + data.size
    out[pos:end] = np.frombuffer(data, np.uint8)
    return end


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
    schema_bytes = hub_stream.schema.serialize().to_pybytes()
    cursor = ReplayCursorServer(session, schema_bytes, start, end, ring, directory)
    return cursor, schema_bytes


def open_run_replay(
    session: Session, data: RecordedData, record: RunRecord, stream: str
) -> tuple[ReplayCursorServer, bytes]:
    """A cursor over the batches of ``stream`` that run ``record`` covers, and the stream's
    schema (IPC): from this daemon's ring and files, or, for a run of an earlier daemon
    run, from the files it left (docs/runs.md)."""
    seqs = record.streams.get(stream)
    if seqs is None:
        raise UnknownStream(
            f"run {record.id} has no stream {stream!r}; its streams: {', '.join(record.streams)}"
        )
    ring = directory = None
    if record.daemon.get("run") == data.run_id:
        if data.rings is not None and stream in data.rings.writers:
            ring = RingReader(data.rings.writers[stream].path)
        if data.persister is not None:
            directory = data.persister.stream_directory(stream)
    elif record.daemon.get("data_dir"):
        directory = stream_directory(Path(record.daemon["data_dir"]), record.daemon["run"], stream)
    schema_bytes = _run_stream_schema(session, stream, directory).serialize().to_pybytes()
    # Nothing published during the run: a range no batch is in.
    first, last = (seqs.first, seqs.last) if seqs.first is not None else (1, 0)
    cursor = ReplayCursorServer(
        session, schema_bytes, -math.inf, math.inf, ring, directory, seqs=(first, last)
    )
    return cursor, schema_bytes


def _run_stream_schema(session: Session, stream: str, directory: Path | None) -> pa.Schema:
    """The stream's schema: the daemon's, else that of the files of an earlier daemon run
    (whose config may have had streams this one lacks)."""
    with contextlib.suppress(UnknownStream):
        return session.services.streams.stream(stream).schema
    for path in persisted_files(directory) if directory is not None else ():
        for _, batch in read_stream_file(path):
            return batch.schema
    raise UnknownStream(f"no stream {stream!r} in this daemon, and no files of it in {directory}")


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
    retention = data.retention
    if retention is not None:
        struct.diskQuota = retention.quota
        struct.diskUsed = retention.used
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
