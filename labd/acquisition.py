"""Acquisition loops: poll instruments and publish what they measure as streams.

Each configured instrument with ``poll_hz > 0`` gets one poller per measurable capability
(a reading, a temperature, a position, a supply readback); each camera with
``frame_fps > 0`` gets a frame loop. Every call goes through the supervisor like any
client's, so a poll waits its turn and a faulted instrument simply produces no data until
it is back — the loop itself never dies.

Readings are collected into batches (per-batch overhead is microseconds; per-row is
nanoseconds) and flushed every :data:`FLUSH_INTERVAL_S` or :data:`MAX_ROWS` rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio

from capabilities import CapabilityError, Frame, Reading
from labd.config import InstrumentSpec
from labd.errors import LabdError
from labd.records import FRAME_SCHEMA, READING_SCHEMA, frame_to_batch, readings_to_batch
from labd.streams import Stream, StreamHub
from labd.supervisor import InstrumentHandle, Supervisor

FLUSH_INTERVAL_S = 0.2
MAX_ROWS = 1000

#: capability -> (stream suffix, the method returning a Reading)
READING_SOURCES: dict[str, tuple[str, str]] = {
    "Readable": ("reading", "read"),
    "TemperatureSensor": ("temperature", "temperature"),
    "Movable": ("position", "position"),
    "Cooled": ("sensor_temperature", "sensor_temperature"),
}


async def poll_readings(
    handle: InstrumentHandle,
    stream: Stream,
    method: str,
    hz: float,
) -> None:
    """Call ``method`` ``hz`` times a second and publish the readings in batches."""
    pending: list[Reading] = []
    period = 1.0 / hz
    next_tick = trio.current_time()
    last_flush = next_tick
    while True:
        reading = await _try(handle, method)
        if isinstance(reading, Reading):
            pending.append(reading)
        now = trio.current_time()
        if pending and (now - last_flush >= FLUSH_INTERVAL_S or len(pending) >= MAX_ROWS):
            stream.publish(readings_to_batch(pending))
            pending = []
            last_flush = now
        next_tick += period
        if next_tick < now:  # the call took longer than a period: skip, do not burst
            next_tick = now
        await trio.sleep_until(next_tick)


async def stream_frames(handle: InstrumentHandle, stream: Stream, fps: float) -> None:
    period = 1.0 / fps
    next_tick = trio.current_time()
    while True:
        frame = await _try(handle, "snap")
        if isinstance(frame, Frame):
            stream.publish(frame_to_batch(frame))
        next_tick = max(next_tick + period, trio.current_time())
        await trio.sleep_until(next_tick)


async def _try(handle: InstrumentHandle, method: str) -> object:
    """One call; failures are the supervisor's business, so the loop just moves on."""
    try:
        return await handle.call(method)
    except (LabdError, CapabilityError):
        await trio.sleep(0.05)  # not ready / faulted: do not spin while it restarts
        return None


def plan(
    supervisor: Supervisor, specs: list[InstrumentSpec], hub: StreamHub
) -> list[Callable[[], Awaitable[None]]]:
    """Create the streams and return the loops that feed them."""
    by_name = {spec.name: spec for spec in specs}
    loops: list[Callable[[], Awaitable[None]]] = []
    for handle in supervisor.handles():
        spec = by_name[handle.name.split("/")[0]]
        if spec.poll_hz > 0:
            for capability, (suffix, method) in READING_SOURCES.items():
                if capability in handle.capabilities:
                    stream = hub.create(f"{handle.name}/{suffix}", READING_SCHEMA, "readings")
                    loops.append(partial(poll_readings, handle, stream, method, spec.poll_hz))
        if spec.frame_fps > 0 and "FrameProducer" in handle.capabilities:
            stream = hub.create(f"{handle.name}/frames", FRAME_SCHEMA, "frames")
            loops.append(partial(stream_frames, handle, stream, spec.frame_fps))
    return loops
