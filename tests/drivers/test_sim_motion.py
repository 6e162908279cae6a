"""Trapezoidal profiles: the motion a simulated stage performs, as pure functions of time."""

import math

import pytest

from drivers.sim.motion import Settling, at_rest, plan_move, plan_stop

SETTLE = Settling(overshoot=0.005, tolerance=0.001, settle_time=0.02)


def test_short_move_is_a_triangle_that_never_reaches_full_speed() -> None:
    move = plan_move(10.0, 0.0, 0.0, 1.0, vmax=20.0, amax=200.0, settling=SETTLE)
    peak = math.sqrt(200.0 * 1.0)  # accelerate over half the way, brake over the other half
    assert move.arrival == pytest.approx(10.0 + 2 * peak / 200.0)
    assert move.position(10.0 + peak / 200.0) == pytest.approx(0.5)
    assert move.velocity(10.0 + peak / 200.0) == pytest.approx(peak)
    assert move.settled_at == pytest.approx(move.arrival + 0.02)


def test_long_move_cruises_at_the_velocity_limit() -> None:
    move = plan_move(0.0, 0.0, 0.0, -10.0, vmax=20.0, amax=200.0, settling=SETTLE)
    # 0.1 s to reach 20 mm/s over 1 mm, 0.4 s cruising 8 mm, 0.1 s braking over 1 mm.
    assert move.arrival == pytest.approx(0.6)
    assert move.velocity(0.3) == pytest.approx(-20.0)
    assert move.position(0.1) == pytest.approx(-1.0)
    assert move.position(0.5) == pytest.approx(-9.0)


def test_settling_rings_within_the_overshoot_and_ends_within_tolerance() -> None:
    move = plan_move(0.0, 0.0, 0.0, 2.0, vmax=20.0, amax=200.0, settling=SETTLE)
    ringing = [move.position(move.arrival + k * 1e-4) - 2.0 for k in range(200)]
    assert max(abs(r) for r in ringing) <= 0.005
    assert max(abs(r) for r in ringing) > 0.001  # it does ring
    assert abs(move.position(move.settled_at) - 2.0) <= 0.001
    assert abs(move.position(move.settled_at + 1.0) - 2.0) <= 0.001


def test_moving_away_from_the_target_brakes_first_then_comes_back() -> None:
    move = plan_move(0.0, 5.0, 10.0, 4.0, vmax=20.0, amax=200.0, settling=SETTLE)
    brake_time = 10.0 / 200.0
    furthest = 5.0 + 10.0**2 / (2 * 200.0)
    assert move.position(brake_time) == pytest.approx(furthest)
    assert move.velocity(brake_time + 1e-3) < 0
    assert move.position(move.arrival) == pytest.approx(4.0, abs=1e-9)


def test_stop_brakes_at_full_deceleration_and_halts_there() -> None:
    stop = plan_stop(1.0, 3.0, -8.0, amax=200.0, settling=SETTLE)
    assert stop.target == pytest.approx(3.0 - 64.0 / 400.0)
    assert stop.arrival == pytest.approx(1.0 + 8.0 / 200.0)
    assert plan_stop(1.0, 3.0, 0.0, amax=200.0, settling=SETTLE) == at_rest(1.0, 3.0)


def test_position_is_a_function_of_time_only() -> None:
    move = plan_move(0.0, 0.0, 0.0, 3.0, vmax=20.0, amax=200.0, settling=SETTLE)
    samples = [move.position(0.05) for _ in range(3)]
    assert samples[0] == samples[1] == samples[2]
    assert move.position(-1.0) == 0.0  # before the command: where it started
