"""Live data to remote subscribers: each at its own pace, none slowing anything else.

One Trio task per subscription pushes the *newest* batch of a stream to the client's
``BatchSink`` (latest-wins via :meth:`Stream.wait_newer`), with at most ``window`` pushes
in flight and at most ``max_rate`` per second. A subscriber slower than the stream skips
batches (and sees the gap in ``seq``); a dead one makes its pushes fail, which ends its
task. Acquisition publishes without ever waiting on a subscriber.

pycapnp has no flow control of its own (docs/architecture.md, measured facts), hence the
explicit window; and since a push of a frame holds megabytes until the client acknowledges
it (the message, pycapnp's copy for the socket, a lane slot, a queued bulk write), what a
subscriber may have in flight is bounded in bytes too (:class:`SubscriberLimits`). One
that acknowledges nothing for :attr:`SubscriberLimits.stuck_s` is dropped: its pushes are
cancelled, its lane or bulk connection closed, and :meth:`SubscriptionServer.stats` tells
the client why.

A batch travels once per subscriber, in one of two ways (:class:`Delivery`): as bytes in
the push message, serialised once for all subscribers (:class:`IpcCache`) and copied once
into each message; or, for a local subscriber and a big batch, through that
subscription's shared-memory lane (:mod:`labd.rpc.lanes`), which skips pycapnp's copies;
or, for a TCP subscriber and a big batch, on that subscription's bulk connection
(:mod:`labd.rpc.bulk`), where only the push's metadata goes through pycapnp.

Failed pushes keep only the text of their error (:func:`failure_text`): an exception that
outlives its ``except`` block holds the frames of the push, with its pycapnp request and
promise, in a reference cycle that only the cyclic garbage collector frees -- on whatever
thread it happens to run, where freeing a pycapnp object aborts the process
(docs/architecture.md, measured facts).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import trio

from capabilities import PermissionDenied
from labd.aio import aio
from labd.contract import schema
from labd.contract.bulk import BULK_UNAVAILABLE
from labd.contract.errors import WireError, parse_error
from labd.contract.lanes import LANE_UNAVAILABLE
from labd.rings.sizing import fmt_bytes
from labd.rpc import trim
from labd.rpc.bulk import MIN_BULK_BATCH_BYTES, BulkChannel, BulkListener
from labd.rpc.ipc import ipc_buffer, ipc_size
from labd.rpc.lanes import Lane, wants_lane
from labd.rpc.policy import Policy
from labd.streams import Stream
from labd.supervisor import StateChange, Supervisor

log = logging.getLogger("labd.rpc")
_s: Any = schema.load()

DEFAULT_WINDOW = 2
MAX_WINDOW = 16
SUBSCRIBER_DROPPED = "subscriber-dropped"
"""The error code of ``Subscription.stats`` once the daemon has dropped the subscriber."""


@dataclass(frozen=True)
class SubscriberLimits:
    """What one subscriber may cost the daemon, whatever it asks for and however it reads.

    Pushes in flight (sent, not yet acknowledged) may hold together at most
    :meth:`budget` bytes of batches: ``budget_batches`` of the current batch size or
    ``budget_bytes``, whichever is larger (a single batch larger than that still goes,
    alone). Over the budget the subscriber waits for an acknowledgement and is then
    handed the newest batch (latest-wins; the skipped ones count in ``stats``). An inline
    push of an 8 MiB frame costs the daemon about twice its size until the client has
    read it (the message and pycapnp's copy for the socket).
    """

    budget_bytes: int = 16 << 20
    budget_batches: int = 2
    stuck_s: float = 30.0
    """A subscriber that acknowledges no push for this long while some are in flight
    is dropped."""

    def budget(self, batch_bytes: int) -> int:
        """Bytes of batches in flight allowed while batches are ``batch_bytes`` big."""
        return max(self.budget_bytes, self.budget_batches * batch_bytes)

    def pushes(self, batch_bytes: int, window: int) -> int:
        """How many pushes of ``batch_bytes`` can be in flight at once (>= 1)."""
        return max(1, min(window, self.budget(batch_bytes) // max(batch_bytes, 1)))


DEFAULT_LIMITS = SubscriberLimits()
"""Used where :func:`push_stream` is not given limits of its own (read at each call)."""

TRIM_AFTER_BYTES = 1 << 20
"""A subscription that pushed batches this big gives its freed memory back when it ends."""


class IpcCache:
    """The IPC bytes of each stream's latest batch, serialised once for all subscribers,
    and their count (what a subscriber's budget is charged)."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, pa.Buffer]] = {}
        self._sizes: dict[str, tuple[int, int]] = {}

    def get(self, stream: Stream, seq: int, batch: pa.RecordBatch) -> pa.Buffer:
        cached = self._latest.get(stream.name)
        if cached is not None and cached[0] == seq:
            return cached[1]
        data = ipc_buffer(batch)
        self._latest[stream.name] = (seq, data)
        return data

    def size(self, stream: Stream, seq: int, batch: pa.RecordBatch) -> int:
        cached = self._sizes.get(stream.name)
        if cached is not None and cached[0] == seq:
            return cached[1]
        size = ipc_size(batch)
        self._sizes[stream.name] = (seq, size)
        return size


class SubscriptionServer(_s.Subscription.Server):  # type: ignore[misc]
    """The client's handle on a running push task: cancel it, or ask how it goes (and,
    once the daemon dropped the subscriber, why)."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.sent = 0
        self.skipped = 0
        self.dropped: str | None = None
        """Why the daemon ended the subscription (it stopped acknowledging pushes)."""

    async def cancel(self, **_: Any) -> None:
        self.scope.cancel()

    async def stats(self, **_: Any) -> tuple[int, int]:
        if self.dropped is not None:
            raise WireError(SUBSCRIBER_DROPPED, self.dropped)
        return self.sent, self.skipped


class InFlight:
    """The pushes of one subscription that the client has not answered yet: how many,
    how many bytes of batches, and since when none was answered."""

    def __init__(self, window: int, limits: SubscriberLimits) -> None:
        self.window = window
        self.limits = limits
        self.count = 0
        self.bytes = 0
        self.waiting_since: float | None = None
        """When the client last answered a push, while some are unanswered."""
        self.largest = 0
        self._changed = trio.Event()

    def admits(self, size: int) -> bool:
        """Whether a push of ``size`` bytes may start now."""
        if self.count == 0:
            return True
        return self.count < self.window and self.bytes + size <= self.limits.budget(size)

    def start(self, size: int) -> None:
        self.count += 1
        self.bytes += size
        self.largest = max(self.largest, size)
        if self.waiting_since is None:
            self.waiting_since = trio.current_time()

    def finish(self, size: int, answered: bool) -> None:
        self.count -= 1
        self.bytes -= size
        if self.count == 0:
            self.waiting_since = None
        elif answered:
            self.waiting_since = trio.current_time()
        self._changed.set()
        self._changed = trio.Event()

    async def wait_room(self) -> None:
        """Until the window lets one more push go."""
        while self.count >= self.window:
            await self._changed.wait()

    async def changed(self) -> None:
        """Until a push finishes."""
        await self._changed.wait()

    async def drop_when_stuck(self, drop: Callable[[], None]) -> None:
        """Call ``drop()`` and return once no push was answered for ``stuck_s``."""
        stuck_s = self.limits.stuck_s
        while True:
            since = self.waiting_since
            now = trio.current_time()
            if since is not None and now - since >= stuck_s:
                drop()
                return
            await trio.sleep_until((since if since is not None else now) + stuck_s)


class Delivery:
    """How one subscription's batches travel: through a shared-memory lane while a local
    client asked for one and can map it, on a bulk connection while a TCP client asked
    for one and is connected to it, otherwise as bytes in the push message."""

    def __init__(
        self,
        stream: Stream,
        cache: IpcCache,
        pushes: InFlight,
        shared_memory: bool,
        bulk: BulkListener | None,
        nursery: trio.Nursery,
    ) -> None:
        self._stream = stream
        self._cache = cache
        self._pushes = pushes
        self._shared_memory = shared_memory
        self._lane: Lane | None = None
        self._bulk_listener = bulk
        self._bulk: BulkChannel | None = None
        self._nursery = nursery

    def fill(self, request: Any, seq: int, batch: pa.RecordBatch, size: int) -> int | None:
        """Put ``batch`` (``size`` IPC bytes) into the push ``request``; returns the lane
        slot it took, if any."""
        if self._shared_memory and wants_lane(size, self._lane):
            if self._lane is None:
                self._lane = self._open_lane(size)
            slot = self._lane.take() if self._lane is not None else None
            if slot is not None:
                assert self._lane is not None
                offset, length = self._lane.write(slot, batch)
                shared = request.init("shared")
                shared.path, shared.offset, shared.length = str(self._lane.path), offset, length
                return slot
        if self._bulk_listener is not None and size >= MIN_BULK_BATCH_BYTES:
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
        # One slot per push the window and the budget let be in flight, no more: the
        # lane's pages are reserved for the whole subscription.
        slots = self._pushes.limits.pushes(batch_bytes, self._pushes.window)
        try:
            return Lane.for_batch(slots, batch_bytes)
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

    def done(self, slot: int | None, failure: str | None) -> bool:
        """The push that used ``slot`` finished; True if ``failure`` (its error text) only
        means the client cannot use its lane or bulk connection (then later batches go
        inline)."""
        if slot is not None:
            assert self._lane is not None
            self._lane.give_back(slot)
        if failure is None:
            return False
        parsed = parse_error(failure)
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


def failure_text(exc: BaseException) -> str:
    """The text of a failed push's error, and the error made harmless to keep around.

    Its traceback holds the frames the error passed through: the push's, with its pycapnp
    request, and :func:`labd.aio.aio`'s, whose asyncio future holds the error again -- a
    cycle. Cutting the traceback (and the errors chained to it) lets reference counting
    free all of it at once, on the event loop's thread.
    """
    text = str(exc) or type(exc).__name__
    while exc is not None:
        exc.__traceback__ = None
        exc = exc.__context__ or exc.__cause__  # type: ignore[assignment]
    return text


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
    limits: SubscriberLimits | None = None,
) -> None:
    """Push the newest batches of ``stream`` to ``sink`` until cancelled, the sink fails,
    or it answers no push for ``limits.stuck_s`` (default :data:`DEFAULT_LIMITS`).

    ``shared_memory``: the client is local and asked for big batches in a shared-memory
    lane (:mod:`labd.rpc.lanes`). ``bulk``: the client is remote and asked for big batches
    on a bulk connection to this listener (:mod:`labd.rpc.bulk`).
    """
    window = max(1, min(window or DEFAULT_WINDOW, MAX_WINDOW))
    period = 1.0 / max_rate if max_rate > 0 and math.isfinite(max_rate) else 0.0
    pushes = InFlight(window, limits or DEFAULT_LIMITS)

    async def send(seq: int, batch: pa.RecordBatch, size: int) -> None:
        request = sink.push_request()
        request.seq = seq
        slot: int | None = None
        failure: str | None = None
        answered = False  # stays so if the push is cancelled
        try:
            slot = delivery.fill(request, seq, batch, size)
            del batch
            promise = request.send()
            del request  # the message is pycapnp's now: nothing here keeps it
            await aio(promise)
            answered = True
            subscription.sent += 1
        except Exception as exc:
            answered = True
            failure = failure_text(exc)
        finally:
            # The slot before the window: the next push may take that very slot.
            refused = delivery.done(slot, failure)
            pushes.finish(size, answered)
        if failure is not None and not refused:
            log.debug("subscriber of %s gone: %s", stream.name, failure)
            subscription.scope.cancel()  # it went away or failed: end it

    def drop() -> None:
        why = (
            f"it answered no push for {pushes.limits.stuck_s:g} s ({pushes.count} in flight,"
            f" {fmt_bytes(pushes.bytes)}): a subscriber must keep reading; subscribe again"
        )
        subscription.dropped = f"the daemon dropped this subscription of {stream.name}: {why}"
        log.warning("dropped a subscriber of %s: %s", stream.name, why)
        subscription.scope.cancel()

    with subscription.scope:
        try:
            async with trio.open_nursery() as nursery:
                delivery = Delivery(stream, cache, pushes, shared_memory, bulk, nursery)
                nursery.start_soon(pushes.drop_when_stuck, drop)
                try:
                    await _push_newest(
                        stream, subscription, pushes, policy, cache, period, nursery, send
                    )
                finally:
                    # Pushes still in flight are cancelled next; a lane slot they give
                    # back then is not used again.
                    delivery.close()
        finally:
            if pushes.largest >= TRIM_AFTER_BYTES:
                trim.release_soon()  # what its messages used is free now


async def _push_newest(
    stream: Stream,
    subscription: SubscriptionServer,
    pushes: InFlight,
    policy: Policy,
    cache: IpcCache,
    period: float,
    nursery: trio.Nursery,
    send: Callable[[int, pa.RecordBatch, int], Awaitable[None]],
) -> None:
    """Start ``send(seq, batch, size)`` with the newest batch whenever the window and
    the byte budget have room, at most once per ``period``, until cancelled."""
    seq = 0
    next_at = trio.current_time()
    while True:
        await pushes.wait_room()
        newest, batch = await stream.wait_newer(seq)
        try:
            policy.check_alive()
        except PermissionDenied:  # revoked or expired: the stream stops too
            subscription.scope.cancel()
            return
        size = cache.size(stream, newest, batch)
        if not pushes.admits(size):
            del batch  # not kept while waiting: the next one will be newer
            await pushes.changed()
            continue
        if seq:
            subscription.skipped += newest - seq - 1
        seq = newest
        pushes.start(size)
        nursery.start_soon(send, seq, batch, size)
        del batch
        if period:
            next_at = max(next_at + period, trio.current_time())
            await trio.sleep_until(next_at)


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
                    log.debug("state watcher gone: %s", failure_text(exc))
                    return


def state_change_to_wire(change: StateChange) -> Any:
    return _s.StateChange.new_message(
        instrument=change.instrument,
        state=change.state.value,
        reason=change.reason or "",
        timestamp=change.timestamp,
    )
