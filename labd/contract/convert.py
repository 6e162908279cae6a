"""The value structs of ``labd.capnp`` to and from :mod:`capabilities.values`."""

from __future__ import annotations

from typing import Any

from capabilities import CoolerState, FrameFormat, Limits, Reading, Roi, SupplyReadback


def reading_to(struct: Any, reading: Reading) -> None:
    struct.value = reading.value
    struct.unit = reading.unit
    struct.timestamp = reading.timestamp


def reading_from(struct: Any) -> Reading:
    return Reading(value=struct.value, unit=struct.unit, timestamp=struct.timestamp)


def limits_to(struct: Any, limits: Limits) -> None:
    struct.low = limits.low
    struct.high = limits.high
    struct.unit = limits.unit


def limits_from(struct: Any) -> Limits:
    return Limits(low=struct.low, high=struct.high, unit=struct.unit)


def roi_to(struct: Any, roi: Roi) -> None:
    struct.x, struct.y, struct.width, struct.height = roi.x, roi.y, roi.width, roi.height


def roi_from(struct: Any) -> Roi:
    return Roi(x=struct.x, y=struct.y, width=struct.width, height=struct.height)


def frame_format_to(struct: Any, fmt: FrameFormat) -> None:
    struct.height, struct.width, struct.dtype = fmt.height, fmt.width, fmt.dtype


def frame_format_from(struct: Any) -> FrameFormat:
    return FrameFormat(height=struct.height, width=struct.width, dtype=struct.dtype)


def cooler_state_to(state: CoolerState) -> str:
    return state.value


def cooler_state_from(wire: Any) -> CoolerState:
    return CoolerState(str(wire))


def readback_to(struct: Any, readback: SupplyReadback) -> None:
    reading_to(struct.voltage, readback.voltage)
    reading_to(struct.current, readback.current)
    struct.inCompliance = readback.in_compliance


def readback_from(struct: Any) -> SupplyReadback:
    return SupplyReadback(
        voltage=reading_from(struct.voltage),
        current=reading_from(struct.current),
        in_compliance=struct.inCompliance,
    )
