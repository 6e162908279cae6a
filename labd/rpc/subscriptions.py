"""Live data to remote subscribers: each at its own pace, none slowing anything else.

One Trio task per subscription pushes the *newest* batch of a stream to the client's
``BatchSink`` (latest-wins via :meth:`Stream.wait_newer`), with at most ``window`` pushes
in flight and at most ``max_rate`` per second. A subscriber slower than the stream skips
batches (and sees the gap in ``seq``); a dead one makes its pushes fail, which ends its
task. Acquisition publishes without ever waiting on a subscriber.

pycapnp has no flow control of its own (DESIGN.md §3), hence the explicit window.
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

    ``shared_memory``: big batches go through a :class:`~labd.rpc.lanes.Lane` (the client
    is local and asked for it); if the client cannot map it, they go inline from then on.
    """
    window = max(1, min(window or DEFAULT_WINDOW, MAX_WINDOW))
    period = 1.0 / max_rate if max_rate > 0 and math.isfinite(max_rate) else 0.0
    slots = trio.Semaphore(window)
    lane: Lane | None = None
    try:
        with subscription.scope:
            async with trio.open_nursery() as nursery:

                async def send(seq: int, batch: pa.RecordBatch) -> None:
                    nonlocal lane, shared_memory
                    request = sink.push_request()
                    request.seq = seq
                    used: tuple[Lane, int] | None = None
                    try:
                        if shared_memory:
                            fits, size = wants_lane(batch, lane)
                            if fits:
                                lane = lane or Lane.for_batch(window, size)
                                used = (lane, lane.take())
                                offset, length = lane.write(used[1], batch)
                                shared = request.init("shared")
                                shared.path = str(lane.path)
                                shared.offset, shared.length = offset, length
                        if used is None:  # one memcpy into the message
                            request.batch = memoryview(cache.get(stream, seq, batch))
                        await aio(request.send())
                        subscription.sent += 1
                    except Exception as exc:
                        if used is not None and _lane_refused(exc):
                            log.info("subscriber of %s cannot map %s: %s", stream.name, lane, exc)
                            shared_memory = False
                            return
                        log.debug("subscriber of %s gone: %s", stream.name, exc)
                        subscription.scope.cancel()  # it went away or failed: end it
                    finally:
                        if used is not None:
                            used[0].give_back(used[1])
                        slots.release()

                seq = 0
                next_at = trio.current_time()
                while True:
                    await slots.acquire()
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
        if lane is not None:
            lane.close()


def _lane_refused(exc: Exception) -> bool:
    parsed = wire.parse_error(str(exc))
    return parsed is not None and parsed[0] == LANE_UNAVAILABLE


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
