"""The physical state simulated instruments share, keyed by instrument name.

In a real lab the power meter "knows" where the stage is because the beam moved. Here
an instrument *publishes* a physical quantity under its name (the stage: its position as
a function of time), and a sibling that is linked to it by a config parameter
(``stage = "stage"``) looks it up at the moment it measures. Lookups happen at read time,
not at construction, because the supervisor opens instruments in no particular order.

Published quantities outlive the driver object that published them. The supervisor
restarts a faulted instrument by closing it and creating a fresh driver; the carriage of a
stage does not teleport home meanwhile, a cold sensor does not warm up at once. So while
a driver is closed its last state stays published (frozen), siblings keep measuring
against it, and the next driver of that name picks it up in ``open()``.

There is one world per Trio run (:func:`current_world`): one daemon is one namespace of
instrument names, and each test's ``trio.run`` starts from a clean world rather than from
wherever an earlier test left its stage. It is dropped when the run ends.
"""

from __future__ import annotations

import bisect
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import trio

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

#: What a supply is set to, as (volts, amps limit, output on): it lives in the box,
#: not in the driver that talks to it.
SUPPLY_SETTINGS: Quantity[tuple[float, float, bool]] = Quantity(
    "settings, as (volts, current limit, output on)"
)

#: A supply's over-voltage protection, as (level in V, tripped): it lives in the box too.
SUPPLY_PROTECTION: Quantity[tuple[float, bool]] = Quantity(
    "over-voltage protection, as (level, tripped)"
)

#: A camera sensor's temperature (°C) as a function of time.
SENSOR_TEMPERATURE: Quantity[Callable[[float], float]] = Quantity(
    "sensor temperature as a function of time"
)

#: How far a thermometer's sample is heated above its base: (time, kelvin) as last computed.
SAMPLE_HEAT: Quantity[tuple[float, float]] = Quantity("sample heating, as (time, kelvin)")


class World:
    """A registry of published physical quantities: ``(instrument name, quantity) → object``."""

    def __init__(self) -> None:
        self._published: dict[tuple[str, Quantity[Any]], Any] = {}

    def publish(self, instrument: str, quantity: Quantity[T], value: T) -> None:
        self._published[(instrument, quantity)] = value

    def get(self, instrument: str, quantity: Quantity[T]) -> T | None:
        """The published ``quantity``, or None: for an instrument resuming its own state."""
        return cast(T | None, self._published.get((instrument, quantity)))

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
        """Remove everything ``instrument`` published."""
        for key in [k for k in self._published if k[0] == instrument]:
            del self._published[key]


_WORLDS: weakref.WeakKeyDictionary[trio.lowlevel.Task, World] = weakref.WeakKeyDictionary()


def current_world() -> World:
    """The world of the running Trio program; call it from Trio code (a driver's ``open()``)."""
    try:
        root = trio.lowlevel.current_root_task()
    except RuntimeError:
        root = None
    if root is None:
        raise RuntimeError("the simulated world exists only inside a running Trio program")
    world = _WORLDS.get(root)
    if world is None:
        world = _WORLDS[root] = World()
    return world
