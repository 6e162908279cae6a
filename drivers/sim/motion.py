"""Trapezoidal motion profiles with settling, as pure functions of time.

A simulated axis must move like a real one: accelerate, cruise, decelerate, ring a little
around the target and come to rest. Because the profile is planned once per command and
then *evaluated* at whatever time someone asks, the position never depends on how often
it is polled, and two instruments looking at the same axis at the same time agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Distances below this (in the axis unit) count as "already there": floating-point dust.
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Segment:
    """Constant acceleration ``a`` from state ``(x0, v0)`` at ``t0`` until ``t1``."""

    t0: float
    t1: float
    x0: float
    v0: float
    a: float

    def position(self, t: float) -> float:
        dt = t - self.t0
        return self.x0 + self.v0 * dt + 0.5 * self.a * dt * dt

    def velocity(self, t: float) -> float:
        return self.v0 + self.a * (t - self.t0)


@dataclass(frozen=True, slots=True)
class Settling:
    """How an axis comes to rest: ``overshoot * exp(-dt/tau) * sin(omega*dt)`` after arrival.

    The decay is chosen so that the ringing envelope has shrunk to ``tolerance`` exactly
    ``settle_time`` after arrival, which is when the axis reports itself settled.
    """

    overshoot: float
    tolerance: float
    settle_time: float

    def offset(self, dt: float) -> float:
        if self.overshoot <= 0 or self.settle_time <= 0:
            return 0.0
        decades = (
            math.log(self.overshoot / self.tolerance) if self.overshoot > self.tolerance else 1.0
        )
        tau = self.settle_time / decades
        omega = 2 * math.pi * 2.5 / self.settle_time  # two and a half wiggles while settling
        return self.overshoot * math.exp(-dt / tau) * math.sin(omega * dt)


@dataclass(frozen=True, slots=True)
class Move:
    """One commanded motion: segments to ``target``, then settling ringing around it."""

    segments: tuple[Segment, ...]
    start: float
    start_position: float
    target: float
    arrival: float
    settled_at: float
    settling: Settling | None

    def position(self, t: float) -> float:
        if t <= self.start:
            return self.start_position
        for segment in self.segments:
            if t < segment.t1:
                return segment.position(t)
        if self.settling is None:
            return self.target
        return self.target + self.settling.offset(t - self.arrival)

    def velocity(self, t: float) -> float:
        """Commanded velocity (ringing is left out: it is the servo's, not the plan's)."""
        for segment in self.segments:
            if segment.t0 <= t < segment.t1:
                return segment.velocity(t)
        return 0.0


def at_rest(t: float, x: float) -> Move:
    """An axis standing still at ``x`` since ``t``."""
    return Move((), t, x, x, t, t, None)


def plan_move(
    t: float, x: float, v: float, target: float, *, vmax: float, amax: float, settling: Settling
) -> Move:
    """The fastest move from state ``(x, v)`` at ``t`` to rest at ``target`` within
    ``|v| <= vmax`` and ``|a| <= amax``.

    If the axis is moving away from the target, or too fast to stop before it, it first
    brakes to a halt and then starts a fresh move from rest.
    """
    segments: list[Segment] = []
    start, start_position = t, x
    d = target - x
    direction = math.copysign(1.0, d) if abs(d) > _EPS else -math.copysign(1.0, v)
    u = v * direction  # speed towards the target
    if abs(v) > _EPS and (u < 0 or u * u / (2 * amax) > abs(d) + _EPS):
        brake = Segment(t, t + abs(v) / amax, x, v, -math.copysign(amax, v))
        segments.append(brake)
        t, x, v, u = brake.t1, brake.position(brake.t1), 0.0, 0.0
        d = target - x
        direction = math.copysign(1.0, d)
    distance = abs(d)
    if distance > _EPS:
        u = max(u, 0.0)
        # Accelerate from u to the peak, decelerate from the peak to 0, covering `distance`.
        peak = max(min(math.sqrt(amax * distance + u * u / 2), vmax), u)
        t_acc = (peak - u) / amax
        t_dec = peak / amax
        d_cruise = distance - (peak * peak - u * u) / (2 * amax) - peak * peak / (2 * amax)
        t_cruise = max(d_cruise, 0.0) / peak
        for duration, speed0, accel in (
            (t_acc, u, amax),
            (t_cruise, peak, 0.0),
            (t_dec, peak, -amax),
        ):
            if duration > 0:
                segment = Segment(t, t + duration, x, direction * speed0, direction * accel)
                segments.append(segment)
                t, x = segment.t1, segment.position(segment.t1)
    if not segments:
        return at_rest(start, target)
    return Move(
        tuple(segments),
        start,
        start_position,
        target,
        arrival=t,
        settled_at=t + settling.settle_time,
        settling=settling,
    )


def plan_stop(t: float, x: float, v: float, *, amax: float, settling: Settling) -> Move:
    """Brake from ``(x, v)`` to a halt as hard as allowed; the halt point is the new target."""
    if abs(v) <= _EPS:
        return at_rest(t, x)
    brake = Segment(t, t + abs(v) / amax, x, v, -math.copysign(amax, v))
    halt = brake.position(brake.t1)
    return Move((brake,), t, x, halt, brake.t1, brake.t1 + settling.settle_time, settling)
