"""Recorded data from a daemon: replay a time range of a stream, and where the data lives.

``await lab.replay("meter/reading", t0, t1)`` gives a ``pyarrow.Table``;
``async with lab.replay_batches(...) as batches`` yields ``(seq, RecordBatch)`` one by
one, for ranges too big to hold at once. The daemon merges its ring and its files
(:func:`labd.rings.replay`); the client pulls chunks of ``chunk_bytes`` with ``window``
requests in flight, so the network stays busy while the previous chunk is parsed, and
neither side ever holds more than a few chunks.

``await lab.data_info()`` says where the rings are (a client on the daemon's machine can
then map them itself, :func:`labd.rings.attach`, with no copy at all) and how
persistence is doing (batches lost, the current disk error).
"""

from __future__ import annotations

import socket
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from labd.client.session import ClientSession
from labd.rings.layout import SEQ_METADATA_KEY

CHUNK_BYTES = 8 << 20
"""Bytes of batches per pull (one 8 MiB frame, or some 400k readings)."""
WINDOW = 2
"""Pulls in flight: one being parsed here while the next crosses the wire."""


@dataclass(frozen=True)
class RingInfo:
    stream: str
    kind: str
    path: Path
    capacity: int
    write_seq: int
    retention_s: float


@dataclass(frozen=True)
class PersistInfo:
    stream: str
    directory: Path
    file: Path | None
    """The file being written now (None: none open)."""
    batches: int
    bytes: int
    lost: int
    """Batches that were in the ring but never reached the disk."""
    last_seq: int
    error: str | None
    """The current disk problem; None while writing works."""


@dataclass(frozen=True)
class DataInfo:
    host: str
    """The daemon's host name: its rings can be mapped only there."""
    daemon_id: str
    ring_root: Path | None
    rings: list[RingInfo]
    data_dir: Path | None
    """Where streams are persisted (``<data_dir>/<stream>/<run_id>/``, docs/live-data.md);
    None when persistence is off."""
    run_id: str
    persisted: list[PersistInfo]
    disk_quota: int = 0
    """What the data directory may hold, in bytes (0: not persisting; docs/live-data.md)."""
    disk_used: int = 0
    """What it held at the daemon's last retention sweep."""

    @property
    def same_host(self) -> bool:
        """True when this process runs on the daemon's machine (the rings may be mapped)."""
        return self.host == socket.gethostname()


def data_info_from_wire(info: Any) -> DataInfo:
    return DataInfo(
        host=info.host,
        daemon_id=info.daemonId,
        ring_root=Path(info.ringRoot) if info.ringRoot else None,
        rings=[
            RingInfo(r.stream, r.kind, Path(r.path), r.capacity, r.writeSeq, r.retention)
            for r in info.rings
        ],
        data_dir=Path(info.dataDir) if info.dataDir else None,
        run_id=info.runId,
        persisted=[
            PersistInfo(
                p.stream,
                Path(p.directory),
                Path(p.file) if p.file else None,
                p.batches,
                p.bytes,
                p.lost,
                p.lastSeq,
                p.error or None,
            )
            for p in info.persisted
        ],
        disk_quota=info.diskQuota,
        disk_used=info.diskUsed,
    )


class Replay:
    """``async with lab.replay_batches(stream, t0, t1) as r: async for seq, batch in r``.

    :attr:`schema` is known once entered, even when the range holds no batch.
    """

    def __init__(
        self,
        link: ClientSession,
        lab_cap: Any,
        stream: str,
        start: float,
        end: float,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        window: int = WINDOW,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if chunk_bytes < 1:  # the daemon raises small ones to 64 KiB, lowers big ones to 64 MiB
            raise ValueError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
        self._link = link
        self._lab_cap = lab_cap
        self._request = (stream, float(start), float(end))
        self._chunk_bytes = chunk_bytes
        self._window = window
        self._cursor: Any = None
        self._in_flight: deque[Any] = deque()
        self._ready: deque[tuple[int, pa.RecordBatch]] = deque()
        self._done = False
        self.schema: pa.Schema | None = None

    async def __aenter__(self) -> Replay:
        stream, start, end = self._request
        result = await self._link.call(lambda: self._lab_cap.replay(stream, start, end))
        self.schema = pa.ipc.read_schema(pa.py_buffer(result.arrowSchema))
        self._cursor = result.cursor
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Dropping the cursor ends the replay on the daemon; pulls still in flight are
        # answered and discarded.
        self._in_flight.clear()
        self._cursor = None

    def __aiter__(self) -> Replay:
        return self

    async def __anext__(self) -> tuple[int, pa.RecordBatch]:
        while not self._ready:
            if self._done:
                raise StopAsyncIteration
            await self._pull()
        return self._ready.popleft()

    async def _pull(self) -> None:
        if self._cursor is None:
            raise RuntimeError("use the replay inside `async with`")
        while len(self._in_flight) < self._window:
            self._in_flight.append(self._cursor.next(self._chunk_bytes))
        promise = self._in_flight.popleft()
        result = await self._link.call(lambda: promise)
        chunk = received_chunk(result)
        if chunk.size:
            self._ready.extend(parse_chunk(chunk))
        if result.done:
            self._done = True
            self._in_flight.clear()


class _Pinned(np.ndarray):
    """Bytes of a received message that keep the message alive (``owner``): pycapnp's
    view of a ``Data`` field does not, and the batches decoded from it point into it."""

    owner: Any


def received_chunk(result: Any) -> pa.Buffer:
    """The ``chunk`` of a ``ReplayCursor.next`` reply, without copying it out of the message."""
    if not result._has("chunk"):  # pycapnp cannot view a Data field that was never set
        return pa.py_buffer(b"")
    pinned = np.frombuffer(result.get_data_as_view("chunk"), np.uint8).view(_Pinned)
    pinned.owner = result
    return pa.py_buffer(pinned)


def parse_chunk(chunk: pa.Buffer | bytes) -> list[tuple[int, pa.RecordBatch]]:
    """The ``(seq, batch)`` pairs of one replay chunk (an IPC stream, ``labd.seq`` each).

    The stream ends at its end-of-stream marker; bytes after it are ignored (the daemon
    cuts a chunk short there when a ring batch was overwritten while being copied).
    """
    reader = pa.ipc.open_stream(chunk)
    out: list[tuple[int, pa.RecordBatch]] = []
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            return out
        out.append((int(metadata[SEQ_METADATA_KEY]), batch))


async def replay_table(replay: Replay) -> pa.Table:
    """Every batch of ``replay`` as one table (with the stream's schema, even if empty)."""
    async with replay:
        batches = [batch async for _, batch in replay]
    return pa.Table.from_batches(batches, schema=replay.schema)
