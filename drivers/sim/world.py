"""The physical state simulated instruments share, keyed by instrument name.

In a real lab the power meter "knows" where the stage is because the beam moved. Here
an instrument *publishes* a physical quantity under its name (the stage: its position as
a function of time), and a sibling that is linked to it by a config parameter
(``stage = "stage"``) looks it up at the moment it measures. Lookups happen at read time,
not at construction, because the supervisor opens instruments in no particular order.

Published quantities outlive the driver that published them: when a stage controller is
closed (on a restart, say) the stage does not vanish, it stays where it stopped, so the
meter keeps reading a sensible value instead of faulting along with its sibling. A new
publication under the same name replaces the old one.

There is one world per process (:data:`WORLD`), which is what a daemon needs: one
namespace of instrument names. Tests give their instruments distinct names.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from capabilities import DeviceError

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Quantity(Generic[T]):
    """A kind of physical state an instrument can publish; its type parameter says what
    the published object is, so :meth:`World.lookup` is typed."""

    description: str


class StepHistory:
    """A quantity that changes in steps (a supply's output power), kept with its history.

    A consumer that integrates over time (a thermometer warming up) needs every step since
    it last looked, not just the present value, or its answer would depend on how often
    it polls. Only the last ``max_steps`` steps are kept; a consumer that has not looked
    for longer than that treats the oldest kept value as having lasted since then.
    """

    def __init__(self, initial: float, t0: float, max_steps: int = 4096) -> None:
        self._times: deque[float] = deque([t0], maxlen=max_steps)
        self._values: deque[float] = deque([initial], maxlen=max_steps)

    def set(self, t: float, value: float) -> None:
        """Record that the value became ``value`` at time ``t`` (times never go back)."""
        t = max(t, self._times[-1])
        if t == self._times[-1]:
            self._values[-1] = value
        else:
            self._times.append(t)
            self._values.append(value)

    def value_at(self, t: float) -> float:
        i = bisect.bisect_right(self._times, t) - 1
        return self._values[max(i, 0)]

    def segments(self, t0: float, t1: float) -> Iterator[tuple[float, float, float]]:
        """``(start, end, value)`` pieces covering ``[t0, t1]`` in order."""
        i = max(bisect.bisect_right(self._times, t0) - 1, 0)
        start = t0
        while start < t1:
            end = min(self._times[i + 1], t1) if i + 1 < len(self._times) else t1
            if end > start:
                yield start, end, self._values[i]
                start = end
            i += 1


#: A stage's position (in its unit) as a function of time (:func:`trio.current_time`).
POSITION: Quantity[Callable[[float], float]] = Quantity("position as a function of time")

#: The electrical power (W) a supply delivers into its load, as a history of steps.
HEATING_POWER: Quantity[StepHistory] = Quantity("output power in W, as a history of steps")


class World:
    """A registry of published physical quantities: ``(instrument name, quantity) → object``."""

    def __init__(self) -> None:
        self._published: dict[tuple[str, Quantity[Any]], Any] = {}

    def publish(self, instrument: str, quantity: Quantity[T], value: T) -> None:
        self._published[(instrument, quantity)] = value

    def lookup(self, instrument: str, quantity: Quantity[T], *, wanted_by: str) -> T:
        """The ``quantity`` published by ``instrument``.

        Raises :class:`~capabilities.DeviceError` (the reading instrument cannot measure)
        naming what is published, so a misspelt link in the config is obvious.
        """
        try:
            return cast(T, self._published[(instrument, quantity)])
        except KeyError:
            offered = sorted(name for name, q in self._published if q is quantity)
            raise DeviceError(
                f"{wanted_by} is linked to {instrument!r}, but no simulated instrument of that"
                f" name publishes its {quantity.description}; instruments that do:"
                f" {', '.join(offered) or 'none (is it configured and opened?)'}."
                f" Fix the link parameter in the config."
            ) from None

    def forget(self, instrument: str) -> None:
        """Remove everything ``instrument`` published (tests use it to start clean)."""
        for key in [k for k in self._published if k[0] == instrument]:
            del self._published[key]


#: The process-wide world every simulated instrument publishes to.
WORLD = World()
