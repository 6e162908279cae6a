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
subscription's shared-memory lane (:mod:`labd.rpc.lanes`), which skips pycapnp's copies.
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
from labd.rpc.ipc import ipc_buffer
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
    """How one subscription's batches travel: through a shared-memory lane while the client
    asked for one and can map it, otherwise as bytes in the push message."""

    def __init__(self, stream: Stream, cache: IpcCache, slots: int, shared_memory: bool) -> None:
        self._stream = stream
        self._cache = cache
        self._slots = slots
        self._shared_memory = shared_memory
        self._lane: Lane | None = None

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
        request.batch = memoryview(self._cache.get(self._stream, seq, batch))  # one memcpy
        return None

    def _open_lane(self, batch_bytes: int) -> Lane | None:
        try:
            return Lane.for_batch(self._slots, batch_bytes)
        except OSError as exc:  # /dev/shm missing or full
            log.warning("%s: no shared-memory lane (%s); sending inline", self._stream.name, exc)
            self._shared_memory = False
            return None

    def done(self, slot: int | None, error: Exception | None) -> bool:
        """The push that used ``slot`` finished; True if ``error`` only means the client
        cannot map the lane (then later batches go inline)."""
        if slot is None:
            return False
        assert self._lane is not None
        self._lane.give_back(slot)
        if error is None:
            return False
        parsed = wire.parse_error(str(error))
        if parsed is None or parsed[0] != LANE_UNAVAILABLE:
            return False
        log.info(
            "%s: the subscriber cannot map its lane (%s); sending inline",
            self._stream.name,
            parsed[1],
        )
        self._shared_memory = False
        return True

    def close(self) -> None:
        if self._lane is not None:
            self._lane.close()


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
) -> None:
    """Push the newest batches of ``stream`` to ``sink`` until cancelled or the sink fails.

    ``shared_memory``: the client is local and asked for big batches in a shared-memory
    lane (:mod:`labd.rpc.lanes`).
    """
    window = max(1, min(window or DEFAULT_WINDOW, MAX_WINDOW))
    period = 1.0 / max_rate if max_rate > 0 and math.isfinite(max_rate) else 0.0
    in_flight = trio.Semaphore(window)
    delivery = Delivery(stream, cache, window, shared_memory)

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
            lane_refused = delivery.done(slot, error)
            in_flight.release()
        if error is not None and not lane_refused:
            log.debug("subscriber of %s gone: %s", stream.name, error)
            subscription.scope.cancel()  # it went away or failed: end it

    try:
        with subscription.scope:
            async with trio.open_nursery() as nursery:
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
