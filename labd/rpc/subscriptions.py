"""Live data to remote subscribers: each at its own pace, none slowing anything else.

One Trio task per subscription pushes the *newest* batch of a stream to the client's
``BatchSink`` (latest-wins via :meth:`Stream.wait_newer`), with at most ``window`` pushes
in flight and at most ``max_rate`` per second. A subscriber slower than the stream skips
batches (and sees the gap in ``seq``); a dead one makes its pushes fail, which ends its
task. Acquisition publishes without ever waiting on a subscriber.

pycapnp has no flow control of its own (DESIGN.md §3), hence the explicit window.

A batch travels once per subscriber, in one of two ways (:class:`Delivery`): as bytes in
the push message, serialised once for all subscribers (:class:`IpcCache`) and copied once
into each message; or, for a local subscriber and a big batch, through that
subscription's shared-memory lane (:mod:`labd.rpc.lanes`), which skips pycapnp's copies;
or, for a TCP subscriber and a big batch, on that subscription's bulk connection
(:mod:`labd.rpc.bulk`), where only the push's metadata goes through pycapnp.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pyarrow as pa
import trio

from capabilities import PermissionDenied
from labd.aio import aio
from labd.rpc import schema, wire
from labd.rpc.bulk import BULK_UNAVAILABLE, MIN_BULK_BATCH_BYTES, BulkChannel, BulkListener
from labd.rpc.ipc import ipc_buffer, ipc_size
from labd.rpc.lanes import LANE_UNAVAILABLE, Lane, wants_lane
from labd.rpc.policy import Policy
from labd.streams import Stream
from labd.supervisor import StateChange, Supervisor

log = logging.getLogger("labd.rpc")
_s: Any = schema.load()

DEFAULT_WINDOW = 2
MAX_WINDOW = 16


class IpcCache:
    """The IPC bytes of each stream's latest batch, serialised once for all subscribers."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, pa.Buffer]] = {}

    def get(self, stream: Stream, seq: int, batch: pa.RecordBatch) -> pa.Buffer:
        cached = self._latest.get(stream.name)
        if cached is not None and cached[0] == seq:
            return cached[1]
        data = ipc_buffer(batch)
        self._latest[stream.name] = (seq, data)
        return data


class SubscriptionServer(_s.Subscription.Server):  # type: ignore[misc]
    """The client's handle on a running push task: cancel it, or ask how it goes."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.sent = 0
        self.skipped = 0

    async def cancel(self, **_: Any) -> None:
        self.scope.cancel()

    async def stats(self, **_: Any) -> tuple[int, int]:
        return self.sent, self.skipped


class Delivery:
    """How one subscription's batches travel: through a shared-memory lane while a local
    client asked for one and can map it, on a bulk connection while a TCP client asked
    for one and is connected to it, otherwise as bytes in the push message."""

    def __init__(
        self,
        stream: Stream,
        cache: IpcCache,
        slots: int,
        shared_memory: bool,
        bulk: BulkListener | None,
        nursery: trio.Nursery,
    ) -> None:
        self._stream = stream
        self._cache = cache
        self._slots = slots
        self._shared_memory = shared_memory
        self._lane: Lane | None = None
        self._bulk_listener = bulk
        self._bulk: BulkChannel | None = None
        self._nursery = nursery

    def fill(self, request: Any, seq: int, batch: pa.RecordBatch) -> int | None:
        """Put ``batch`` into the push ``request``; returns the lane slot it took, if any."""
        if self._shared_memory:
            fits, size = wants_lane(batch, self._lane)
            if fits and self._lane is None:
                self._lane = self._open_lane(size)
            if fits and self._lane is not None:
                slot = self._lane.take()
                offset, length = self._lane.write(slot, batch)
                shared = request.init("shared")
                shared.path, shared.offset, shared.length = str(self._lane.path), offset, length
                return slot
        if self._bulk_listener is not None and (size := ipc_size(batch)) >= MIN_BULK_BATCH_BYTES:
            if self._bulk is None:
                self._bulk = BulkChannel(self._bulk_listener, self._nursery)
                offer = request.init("bulk")
                offer.port, offer.token = self._bulk.port, self._bulk.token
            elif self._bulk.attached:
                self._bulk.queue(seq, batch, size)  # serialised into the socket, no copy
                request.init("bulk").length = size
                return None
            elif self._bulk.lapsed:
                self._stop_bulk("it did not connect in time, or its connection broke")
        request.batch = memoryview(self._cache.get(self._stream, seq, batch))  # one memcpy
        return None

    def _open_lane(self, batch_bytes: int) -> Lane | None:
        try:
            return Lane.for_batch(self._slots, batch_bytes)
        except OSError as exc:  # /dev/shm missing or full
            log.warning("%s: no shared-memory lane (%s); sending inline", self._stream.name, exc)
            self._shared_memory = False
            return None

    def _stop_bulk(self, why: str) -> None:
        log.info("%s: no bulk connection to the subscriber (%s); sending inline",
                 self._stream.name, why)  # fmt: skip
        self._bulk_listener = None
        if self._bulk is not None:
            self._bulk.close()

    def done(self, slot: int | None, error: Exception | None) -> bool:
        """The push that used ``slot`` finished; True if ``error`` only means the client
        cannot use its lane or bulk connection (then later batches go inline)."""
        if slot is not None:
            assert self._lane is not None
            self._lane.give_back(slot)
        if error is None:
            return False
        parsed = wire.parse_error(str(error))
        if parsed is None:
            return False
        if parsed[0] == LANE_UNAVAILABLE and slot is not None:
            log.info("%s: the subscriber cannot map its lane (%s); sending inline",
                     self._stream.name, parsed[1])  # fmt: skip
            self._shared_memory = False
            return True
        if parsed[0] == BULK_UNAVAILABLE and self._bulk is not None:
            if self._bulk_listener is not None:
                self._stop_bulk(f"the subscriber says: {parsed[1]}")
            return True
        return False

    def close(self) -> None:
        if self._lane is not None:
            self._lane.close()
        if self._bulk is not None:
            self._bulk.close()


async def push_stream(
    stream: Stream,
    sink: Any,
    subscription: SubscriptionServer,
    *,
    max_rate: float,
    window: int,
    policy: Policy,
    cache: IpcCache,
    shared_memory: bool = False,
    bulk: BulkListener | None = None,
) -> None:
    """Push the newest batches of ``stream`` to ``sink`` until cancelled or the sink fails.

    ``shared_memory``: the client is local and asked for big batches in a shared-memory
    lane (:mod:`labd.rpc.lanes`). ``bulk``: the client is remote and asked for big batches
    on a bulk connection to this listener (:mod:`labd.rpc.bulk`).
    """
    window = max(1, min(window or DEFAULT_WINDOW, MAX_WINDOW))
    period = 1.0 / max_rate if max_rate > 0 and math.isfinite(max_rate) else 0.0
    in_flight = trio.Semaphore(window)

    async def send(seq: int, batch: pa.RecordBatch) -> None:
        request = sink.push_request()
        request.seq = seq
        slot: int | None = None
        error: Exception | None = None
        try:
            slot = delivery.fill(request, seq, batch)
            await aio(request.send())
            subscription.sent += 1
        except Exception as exc:
            error = exc
        finally:
            # The slot before the window: the next push may take that very slot.
            refused = delivery.done(slot, error)
            in_flight.release()
        if error is not None and not refused:
            log.debug("subscriber of %s gone: %s", stream.name, error)
            subscription.scope.cancel()  # it went away or failed: end it

    with subscription.scope:
        async with trio.open_nursery() as nursery:
            delivery = Delivery(stream, cache, window, shared_memory, bulk, nursery)
            try:
                seq = 0
                next_at = trio.current_time()
                while True:
                    await in_flight.acquire()
                    newest, batch = await stream.wait_newer(seq)
                    try:
                        policy.check_alive()
                    except PermissionDenied:  # revoked or expired: the stream stops too
                        subscription.scope.cancel()
                        return
                    if seq:
                        subscription.skipped += newest - seq - 1
                    seq = newest
                    nursery.start_soon(send, seq, batch)
                    if period:
                        next_at = max(next_at + period, trio.current_time())
                        await trio.sleep_until(next_at)
            finally:
                delivery.close()


async def push_states(
    supervisor: Supervisor, watcher: Any, subscription: SubscriptionServer
) -> None:
    """Send every instrument state change to ``watcher``, one call at a time.

    A watcher that does not keep up misses changes (the supervisor's buffer drops them),
    it never blocks the supervisor.
    """
    with subscription.scope:
        changes = supervisor.subscribe_states()
        async with changes:
            async for change in changes:
                try:
                    await aio(watcher.changed(state_change_to_wire(change)))
                except Exception as exc:
                    log.debug("state watcher gone: %s", exc)
                    return


def state_change_to_wire(change: StateChange) -> Any:
    return _s.StateChange.new_message(
        instrument=change.instrument,
        state=change.state.value,
        reason=change.reason or "",
        timestamp=change.timestamp,
    )
