"""Experiments written against capabilities, not instruments.

Each function asks for exactly the capabilities it needs, so mypy rejects a call with an
instrument that lacks one, and the same code runs on in-process proxies, on remote
capabilities over RPC, and on a simulated or a real lab.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import trio

from capabilities import FrameProducer, Movable, Readable, TemperatureSensor, VoltageSource


@dataclass(frozen=True)
class ScanPoint:
    position: float
    power: float
    frame_max: int
    spot_x: int
    """Column of the brightest pixel of the frame (-1 without a camera)."""


@dataclass(frozen=True)
class ScanResult:
    points: list[ScanPoint]
    unit: str
    power_unit: str

    @property
    def peak(self) -> ScanPoint:
        return max(self.points, key=lambda p: p.power)


def linspace(start: float, stop: float, steps: int) -> list[float]:
    return [float(x) for x in np.linspace(start, stop, steps)]


async def stage_scan(
    stage: Movable,
    meter: Readable,
    camera: FrameProducer | None,
    positions: Sequence[float],
    on_point: Callable[[int, ScanPoint], None] | None = None,
) -> ScanResult:
    """Move to each position, wait until settled, read the meter and snap a frame."""
    points: list[ScanPoint] = []
    unit = power_unit = ""
    for i, target in enumerate(positions):
        await stage.move_abs(target)
        position = await stage.wait_settled()
        reading = await meter.read()
        frame_max, spot_x = 0, -1
        if camera is not None:
            frame = await camera.snap()
            column_max = frame.data.max(axis=0)
            frame_max, spot_x = int(column_max.max()), int(column_max.argmax()) + frame.roi.x
        point = ScanPoint(position.value, reading.value, frame_max, spot_x)
        unit, power_unit = position.unit, reading.unit
        points.append(point)
        if on_point is not None:
            on_point(i, point)
    return ScanResult(points, unit, power_unit)


@dataclass(frozen=True)
class SweepPoint:
    volts: float
    kelvin: float


async def temperature_sweep(
    sensor: TemperatureSensor,
    supply: VoltageSource,
    voltages: Sequence[float],
    settle_s: float = 0.0,
) -> list[SweepPoint]:
    """Step the supply through ``voltages``, wait ``settle_s``, record the temperature."""
    points = []
    for volts in voltages:
        await supply.set_voltage(volts)
        await trio.sleep(settle_s)
        temperature = await sensor.temperature()
        points.append(SweepPoint(volts, temperature.value))
    return points
