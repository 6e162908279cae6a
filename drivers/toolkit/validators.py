"""Validators: refuse a value with :class:`capabilities.OutOfRange` before it is sent.

A validator is checked in Python, before any I/O, so a bad value never reaches the
instrument — important where the instrument would clip it silently or, worse, accept it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from capabilities import Limits, OutOfRange

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Validator(Protocol[T_contra]):
    """Checks a value; raises :class:`OutOfRange` naming ``what`` when it is refused."""

    def check(self, value: T_contra, what: str) -> None: ...


@dataclass(frozen=True)
class InRange:
    """A closed numeric interval (see :func:`in_range`)."""

    low: float
    high: float
    unit: str = ""

    def check(self, value: float, what: str) -> None:
        Limits(self.low, self.high, self.unit).check(value, what)

    def limits(self) -> Limits:
        return Limits(self.low, self.high, self.unit)


@dataclass(frozen=True)
class OneOf(Generic[T]):
    """A fixed set of accepted values (see :func:`one_of`)."""

    values: Collection[T]

    def check(self, value: T, what: str) -> None:
        if value not in self.values:
            accepted = ", ".join(map(str, self.values))
            raise OutOfRange(f"{what} {value!r} is not one of: {accepted}")


def in_range(low: float, high: float, unit: str = "") -> InRange:
    """Accept ``low <= value <= high``."""
    if low > high:
        raise ValueError(f"in_range: low {low} is above high {high}")
    return InRange(low, high, unit)


def one_of(*values: T) -> OneOf[T]:
    """Accept exactly these values."""
    return OneOf(values)
