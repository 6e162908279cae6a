"""A simulated motorised linear stage: trapezoidal moves, travel limits, settling."""

from __future__ import annotations

import math

import trio

from capabilities import DeviceDisconnected, InvalidRequest, Limits, Reading, WaitTimeout
from drivers.sim.base import SimInstrument, check_non_negative, check_positive
from drivers.sim.motion import Move, Settling, at_rest, plan_move, plan_stop
from drivers.sim.world import POSITION
from drivers.toolkit.parameters import value


class SimStage(SimInstrument):
    """A stage that takes the time a real one takes.

    ``move_abs`` plans a trapezoidal profile (``velocity``, ``acceleration``) and returns
    at once; the position is that profile evaluated at the current time, followed by a
    damped ring of amplitude ``overshoot`` that decays to ``tolerance`` in ``settle_time``.
    ``wait_settled`` sleeps until then. A move outside ``[low_limit, high_limit]`` is
    refused before anything moves.

    The stage publishes its position in the world under ``name``, so a power meter or a
    camera linked to it sees the beam move. ``position`` is where the carriage is when the
    lab starts; a restarted controller finds it where the previous one left it.

    With the defaults a 0.3 mm step takes ~100 ms including settling, so a 20-point scan
    over 6 mm takes about 2 s.

    Parameters ``velocity`` and ``acceleration`` shape the profile of the *next* move
    (a move under way keeps its plan, as on a controller that latches them at the start).
    """

    velocity = value(
        20.0,
        unit="{unit}/s",
        low=1e-3,
        high=1e4,
        doc="maximum speed of the next move",
    )
    acceleration = value(
        200.0,
        unit="{unit}/s^2",
        low=1e-2,
        high=1e6,
        doc="acceleration and braking rate of the next move (and of stop())",
    )

    def __init__(
        self,
        *,
        name: str = "stage",
        position: float = 0.0,
        low_limit: float = 0.0,
        high_limit: float = 25.0,
        velocity: float = 20.0,
        acceleration: float = 200.0,
        settle_time: float = 0.02,
        tolerance: float = 0.001,
        overshoot: float = 0.005,
        unit: str = "mm",
        fail_after_calls: int | None = None,
        hang_after_calls: int | None = None,
        disconnect_after_calls: int | None = None,
    ) -> None:
        super().__init__(
            name,
            fail_after_calls=fail_after_calls,
            hang_after_calls=hang_after_calls,
            disconnect_after_calls=disconnect_after_calls,
        )
        owner = f"sim.stage {name!r}"
        check_positive(owner, velocity=velocity, acceleration=acceleration, tolerance=tolerance)
        if not low_limit < high_limit:
            raise ValueError(
                f"{owner}: low_limit {low_limit} must be below high_limit {high_limit}"
            )
        check_non_negative(owner, settle_time=settle_time, overshoot=overshoot)
        self._limits = Limits(float(low_limit), float(high_limit), unit)
        self._limits.check(position, f"{owner}: initial position")
        self._initial = float(position)
        self.velocity = float(velocity)
        self.acceleration = float(acceleration)
        self._settling = Settling(float(overshoot), float(tolerance), float(settle_time))
        self._move: Move | None = None
        self._parked = self._initial  # where the carriage is while the controller is closed
        self._replanned = trio.Event()

    async def open(self) -> None:
        await super().open()
        t = trio.current_time()
        previous = self.world.get(self.name, POSITION)
        start = self._initial if previous is None else previous(t)
        self._move = at_rest(t, start)
        self._parked = start
        self._replanned = trio.Event()
        self.world.publish(self.name, POSITION, self._position_at)

    async def close(self) -> None:
        if self._move is not None:
            # Closing the controller halts the motor where it is; the carriage stays there.
            parked = self._parked = self._move.position(trio.current_time())
            self._move = None
            self.world.publish(self.name, POSITION, lambda t: parked)
        self._replan(None)
        await super().close()

    # Movable

    async def move_abs(self, position: float) -> None:
        await self._call("move_abs")
        self._start_move(self._checked_target(position))

    async def move_rel(self, delta: float) -> None:
        await self._call("move_rel")
        self._start_move(self._checked_target(self._current().target + delta))

    async def position(self) -> Reading:
        await self._call("position")
        return Reading(self._current().position(trio.current_time()), self._limits.unit)

    async def wait_settled(self, timeout: float | None = None) -> Reading:
        await self._call("wait_settled")
        if timeout is not None and not timeout >= 0:
            raise InvalidRequest(f"timeout must be >= 0 s or None, got {timeout!r}")
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        while True:
            move = self._current()
            t = trio.current_time()
            if t >= move.settled_at:
                return Reading(move.position(t), self._limits.unit)
            if t >= deadline:
                raise WaitTimeout(
                    f"{self.name} did not settle within {timeout:g} s: it needs another"
                    f" {move.settled_at - t:.3g} s to reach {move.target:g} {self._limits.unit}"
                )
            # Wake at the settle time, the deadline, or when a new command changes the plan.
            replanned = self._replanned
            with trio.move_on_at(min(move.settled_at, deadline)):
                await replanned.wait()

    async def limits(self) -> Limits:
        await self._call("limits")
        return self._limits

    # HasMoveTarget

    async def move_target(self) -> Reading:
        """Where the carriage is going (where it is, once settled): what move_rel adds to."""
        await self._call("move_target")
        return Reading(self._current().target, self._limits.unit)

    # Stoppable

    async def stop(self) -> None:
        await self._call("stop")
        move = self._current()
        t = trio.current_time()
        self._replan(
            plan_stop(
                t,
                move.position(t),
                move.velocity(t),
                amax=self.acceleration,
                settling=self._settling,
            )
        )

    # internals

    def parameter_fields(self) -> dict[str, object]:
        return {"unit": self._limits.unit}

    def _position_at(self, t: float) -> float:
        """What siblings see: follows every new command, and the parked carriage after close."""
        move = self._move
        return self._parked if move is None else move.position(t)

    def _current(self) -> Move:
        if self._move is None:  # closed while a wait_settled() was still waiting
            raise DeviceDisconnected(f"{self.name} was closed")
        return self._move

    def _checked_target(self, target: float) -> float:
        return float(self._limits.check(float(target), f"{self.name} target"))

    def _start_move(self, target: float) -> None:
        move = self._current()
        t = trio.current_time()
        self._replan(
            plan_move(
                t,
                move.position(t),
                move.velocity(t),
                target,
                vmax=self.velocity,
                amax=self.acceleration,
                settling=self._settling,
            )
        )

    def _replan(self, move: Move | None) -> None:
        if move is not None:
            self._move = move
        self._replanned.set()
        self._replanned = trio.Event()
