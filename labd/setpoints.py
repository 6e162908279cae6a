"""Ranged set-points: which calls change a position, a voltage or a current, and to what.

A range restriction (docs/security.md) must hold against every sequence and interleaving
of calls, so it is checked against the set-point a call would *leave*, worked out in the
instrument's owner task right before the call runs (nothing else reaches the driver in
between):

* a relative move adds to the pending target, where the axis is going, not to where it is
  now; under a restriction it is sent as the absolute move to the checked target, so the
  driver cannot add it to anything else;
* switching an output on makes its present voltage and current set-points live;
* a parameter set leaves ``parameter:<name>`` at its (already checked) value.

A Movable that cannot report its target (:class:`capabilities.HasMoveTarget`) has the
target it was last commanded to remembered here; one never commanded since it was opened
is taken to be going nowhere but where it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capabilities import HasMoveTarget, InvalidRequest, Movable, VoltageSource
from capabilities.declarations import declared

_METHODS = [m for decl in declared() for m in decl.methods]
#: method -> the quantity its argument sets (absolutely), as the capabilities declare it.
ABSOLUTE = {m.name: m.sets for m in _METHODS if m.sets is not None}
#: method -> (the quantity its argument changes by, the absolute method that does the same).
RELATIVE = {
    m.name: (m.moves, next(a for a, q in ABSOLUTE.items() if q == m.moves))
    for m in _METHODS
    if m.moves is not None
}
#: methods after which the pending position is no longer what was commanded.
LOSE_POSITION = {m.name for m in _METHODS if m.forgets == "position"}


@dataclass(frozen=True)
class Plan:
    """A call as it will run, and the set-points it leaves (quantity -> value)."""

    method: str
    args: tuple[Any, ...]
    leaves: Mapping[str, object]


class Setpoints:
    """The set-points of one driver object (an instrument or one of its channels)."""

    def __init__(self) -> None:
        self._position: float | None = None
        """The target of the last move commanded through the owner task; None: unknown."""
        self._before: float | None = None

    async def plan(self, target: object, method: str, args: tuple[Any, ...]) -> Plan:
        """Where ``method(*args)`` on ``target`` would leave each ranged quantity it touches.

        Runs in the owner task; the queries it makes go to the driver like any call (a
        driver error here is the driver's fault).
        """
        if method in ABSOLUTE:
            return Plan(method, args, {ABSOLUTE[method]: _number(method, args)})
        if method in RELATIVE:
            quantity, absolute = RELATIVE[method]
            goal = await self.pending(target, quantity) + _number(method, args)
            return Plan(absolute, (goal,), {quantity: goal})
        if method == "set_on" and args and args[0] and isinstance(target, VoltageSource):
            live = {
                "voltage": await target.voltage_setpoint(),
                "current": await target.current_limit(),
            }
            return Plan(method, args, live)
        if method == "set_parameter" and len(args) == 2:
            return Plan(method, args, {parameter_key(str(args[0])): args[1]})
        return Plan(method, args, {})

    async def pending(self, target: object, quantity: str) -> float:
        """The set-point ``quantity`` has now: where it goes, not where it is."""
        if quantity == "voltage" and isinstance(target, VoltageSource):
            return await target.voltage_setpoint()
        if quantity == "current" and isinstance(target, VoltageSource):
            return await target.current_limit()
        if quantity == "position" and isinstance(target, Movable):
            if isinstance(target, HasMoveTarget):
                return (await target.move_target()).value
            if self._position is not None:
                return self._position
            return (await target.position()).value
        raise InvalidRequest(f"this instrument has no {quantity} set-point")

    def starting(self, method: str) -> None:
        """``method`` is about to run: a move that fails half-way leaves the target unknown."""
        if ABSOLUTE.get(method) == "position" or method in RELATIVE or method in LOSE_POSITION:
            self._before, self._position = self._position, None

    def succeeded(self, method: str, args: tuple[Any, ...]) -> None:
        """``method(*args)`` returned: remember the target it commanded."""
        if ABSOLUTE.get(method) == "position":
            self._position = float(args[0])
        elif method in RELATIVE and self._before is not None:
            self._position = self._before + float(args[0])


def parameter_key(name: str) -> str:
    """How a parameter set appears among the set-points a call leaves."""
    return PARAMETER_PREFIX + name


PARAMETER_PREFIX = "parameter:"


def _number(method: str, args: tuple[Any, ...]) -> float:
    value = args[0] if args else None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidRequest(f"{method}: expected a number, got {value!r}")
    return float(value)
