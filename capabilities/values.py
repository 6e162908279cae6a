"""Value types that cross capability boundaries.

Every physical quantity carries its unit, and every measurement carries the time it
was taken, so that a value read from a ring, from a file or over the wire still means
the same thing hours later.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from capabilities.errors import OutOfRange


def now() -> float:
    """Wall-clock timestamp in seconds since the epoch, the one clock every value uses."""
    return time.time()


@dataclass(frozen=True, slots=True)
class Reading:
    """A scalar measurement: value, unit and the time it was taken."""

    value: float
    unit: str
    timestamp: float = field(default_factory=now)

    def __str__(self) -> str:
        return f"{self.value:.6g} {self.unit}"


@dataclass(frozen=True, slots=True)
class Limits:
    """The closed range an axis or a set point accepts."""

    low: float
    high: float
    unit: str

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high

    def check(self, value: float, what: str = "value") -> float:
        """Return ``value`` or raise :class:`~capabilities.errors.OutOfRange`."""
        if not self.low <= value <= self.high:
            raise OutOfRange(
                f"{what} {value:g} {self.unit} is outside [{self.low:g}, {self.high:g}] {self.unit}"
            )
        return value


@dataclass(frozen=True, slots=True)
class Roi:
    """A rectangular region of interest on a sensor, in pixels (x, y is the top-left)."""

    x: int
    y: int
    width: int
    height: int

    def fits(self, sensor_width: int, sensor_height: int) -> bool:
        return (
            self.x >= 0
            and self.y >= 0
            and self.width > 0
            and self.height > 0
            and self.x + self.width <= sensor_width
            and self.y + self.height <= sensor_height
        )


@dataclass(frozen=True, slots=True)
class FrameFormat:
    """What :meth:`FrameProducer.snap` returns: shape (rows, columns) and numpy dtype name."""

    height: int
    width: int
    dtype: str


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image plus the metadata needed to interpret it later."""

    data: npt.NDArray[np.generic]
    timestamp: float
    exposure_s: float
    roi: Roi
    seq: int = 0

    @property
    def format(self) -> FrameFormat:
        height, width = self.data.shape[:2]
        return FrameFormat(height=height, width=width, dtype=str(self.data.dtype))


class CoolerState(enum.Enum):
    """Where a cooled sensor is relative to its target."""

    OFF = "off"
    COOLING = "cooling"
    STABLE = "stable"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class SupplyReadback:
    """What a voltage source measures at its output terminals."""

    voltage: Reading
    current: Reading
    in_compliance: bool
    """True when the output is current-limited (constant-current mode)."""
