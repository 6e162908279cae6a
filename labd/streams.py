"""Named data streams: the one place acquired data is published.

Every producer (a reading poller, the frame loop, a script's results) publishes record
batches to a :class:`Stream`; every consumer reads from it at its own pace. Consumers
never slow producers: :meth:`Stream.wait_newer` hands out the *latest* batch (a slow
consumer skips, and sees the gap in the sequence numbers), and sinks — the ring writer,
the persister — are plain callbacks that must not block.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import trio

from labd.errors import UnknownStream

Sink = Callable[[int, pa.RecordBatch], None]


class Stream:
    """One named sequence of record batches with a fixed schema."""

    def __init__(self, name: str, schema: pa.Schema, kind: str) -> None:
        self.name = name
        self.schema = schema
        self.kind = kind
        self.seq = 0
        self._latest: pa.RecordBatch | None = None
        self._changed = trio.Event()
        self._sinks: list[Sink] = []

    def publish(self, batch: pa.RecordBatch) -> int:
        """Publish ``batch``; returns its sequence number (1, 2, ...)."""
        if not batch.schema.equals(self.schema):
            raise ValueError(f"stream {self.name}: batch schema does not match the stream's")
        self.seq += 1
        self._latest = batch
        for sink in self._sinks:
            sink(self.seq, batch)
        self._changed.set()
        self._changed = trio.Event()
        return self.seq

    async def wait_newer(self, seq: int) -> tuple[int, pa.RecordBatch]:
        """The newest batch with a sequence number above ``seq`` (waits for one)."""
        while self.seq <= seq or self._latest is None:
            await self._changed.wait()
        return self.seq, self._latest

    def add_sink(self, sink: Sink) -> None:
        """Call ``sink(seq, batch)`` on every publish. It runs inline: it must not block."""
        self._sinks.append(sink)


class StreamHub:
    """All streams of one daemon, by name (``"<instrument>/<stream>"``)."""

    def __init__(self) -> None:
        self._streams: dict[str, Stream] = {}

    def create(self, name: str, schema: pa.Schema, kind: str) -> Stream:
        if name in self._streams:
            raise ValueError(f"stream {name!r} already exists")
        stream = Stream(name, schema, kind)
        self._streams[name] = stream
        return stream

    def stream(self, name: str) -> Stream:
        try:
            return self._streams[name]
        except KeyError:
            known = ", ".join(self._streams) or "none"
            raise UnknownStream(f"no stream named {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return list(self._streams)
