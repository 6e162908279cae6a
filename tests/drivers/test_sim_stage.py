"""SimStage: moves take the time the profile says, limits are refused, stop halts."""

import time

import pytest
import trio
import trio.testing

from capabilities import (
    DeviceDisconnected,
    Limits,
    Movable,
    OutOfRange,
    Stoppable,
    WaitTimeout,
    capabilities_of,
)
from drivers.registry import driver_class
from drivers.sim.stage import SimStage
from drivers.sim.world import POSITION, current_world


def run_mock_clock(afn: object) -> None:
    """Run ``afn`` with virtual time: sleeps finish at once, timing is exact."""
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_registry_name_and_capabilities() -> None:
    assert driver_class("sim.stage") is SimStage
    assert capabilities_of(SimStage()) == [
        "Movable",
        "Stoppable",
        "FaultInjectable",
        "Configurable",
    ]


def test_move_and_settle_take_the_profile_time() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-timing", velocity=20.0, acceleration=200.0, settle_time=0.02)
        await stage.open()
        start = trio.current_time()
        await stage.move_abs(10.0)
        assert trio.current_time() == start  # move_abs only starts the move
        await trio.sleep(0.3)  # mid-cruise: 1 mm accelerating in 0.1 s, then 20 mm/s
        assert (await stage.position()).value == pytest.approx(1.0 + 20.0 * 0.2)
        final = await stage.wait_settled()
        # 0.6 s of motion (see test_sim_motion), then 20 ms to settle.
        assert trio.current_time() - start == pytest.approx(0.62)
        assert final.value == pytest.approx(10.0, abs=0.001)
        assert final.unit == "mm"

    run_mock_clock(main)


def test_wait_settled_in_real_time() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-real-time")
        await stage.open()
        t = time.perf_counter()
        await stage.move_abs(2.0)
        final = await stage.wait_settled(timeout=5.0)
        elapsed = time.perf_counter() - t
        expected = 2 * (2.0 / 200.0) ** 0.5 + 0.02  # triangle profile, then settling
        assert expected <= elapsed < expected + 0.25
        assert final.value == pytest.approx(2.0, abs=0.001)

    trio.run(main)


def test_wait_settled_times_out_when_the_move_takes_longer() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-timeout")
        await stage.open()
        await stage.move_abs(20.0)
        with pytest.raises(WaitTimeout, match=r"did not settle within 0\.1 s"):
            await stage.wait_settled(timeout=0.1)
        await stage.wait_settled()

    run_mock_clock(main)


def test_moves_outside_the_limits_are_refused_before_anything_moves() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-limits", low_limit=-5.0, high_limit=5.0, position=1.0)
        await stage.open()
        assert await stage.limits() == Limits(-5.0, 5.0, "mm")
        with pytest.raises(OutOfRange, match=r"6 mm is outside \[-5, 5\] mm"):
            await stage.move_abs(6.0)
        with pytest.raises(OutOfRange):
            await stage.move_rel(-7.0)
        with pytest.raises(OutOfRange):
            await stage.move_abs(float("nan"))
        await trio.sleep(1.0)
        assert (await stage.position()).value == 1.0

    run_mock_clock(main)


def test_move_rel_is_relative_to_the_current_target() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-rel")
        await stage.open()
        await stage.move_abs(4.0)
        await stage.move_rel(1.5)  # while still moving towards 4.0
        assert (await stage.wait_settled()).value == pytest.approx(5.5, abs=0.001)

    run_mock_clock(main)


def test_stop_decelerates_and_halts_short_of_the_target() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-stop", velocity=20.0, acceleration=200.0)
        await stage.open()
        await stage.move_abs(20.0)
        await trio.sleep(0.3)  # cruising at 20 mm/s, at 5 mm
        await stage.stop()
        halted = await stage.wait_settled()
        assert halted.value == pytest.approx(5.0 + 20.0**2 / (2 * 200.0), abs=0.001)
        await trio.sleep(1.0)
        assert (await stage.position()).value == pytest.approx(halted.value, abs=0.001)

    run_mock_clock(main)


def test_stop_wakes_a_waiter_early() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-stop-waiter")
        await stage.open()
        start = trio.current_time()
        await stage.move_abs(20.0)
        settled_after: list[float] = []

        async def waiter() -> None:
            await stage.wait_settled()
            settled_after.append(trio.current_time() - start)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.2)
            await stage.stop()
        # Braking from 20 mm/s takes 0.1 s and settling 0.02 s: the full move needed 1.02 s.
        assert settled_after == [pytest.approx(0.32)]

    run_mock_clock(main)


def test_closing_wakes_a_waiter_with_a_disconnect() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-close-waiter")
        await stage.open()
        await stage.move_abs(20.0)
        async with trio.open_nursery() as nursery:

            async def waiter() -> None:
                with pytest.raises(DeviceDisconnected, match="was closed"):
                    await stage.wait_settled()

            nursery.start_soon(waiter)
            await trio.sleep(0.1)
            await stage.close()

    run_mock_clock(main)


def test_position_is_published_in_the_world_and_survives_a_restart() -> None:
    async def main() -> None:
        stage = SimStage(name="stage-world")
        await stage.open()
        await stage.move_abs(3.0)
        seen = current_world().lookup("stage-world", POSITION, wanted_by="test")
        await stage.wait_settled()
        assert seen(trio.current_time()) == pytest.approx(3.0, abs=0.001)
        await stage.move_abs(6.0)
        await trio.sleep(0.05)
        await stage.close()  # mid-move: the motor halts where it is
        halted = seen(trio.current_time())
        assert 3.0 < halted < 6.0
        # The carriage stays there while the controller is closed...
        parked = current_world().lookup("stage-world", POSITION, wanted_by="test")
        await trio.sleep(1.0)
        assert parked(trio.current_time()) == halted
        # ...and the fresh driver a supervisor restart creates finds it there.
        restarted = SimStage(name="stage-world")
        await restarted.open()
        assert (await restarted.position()).value == halted

    run_mock_clock(main)


def test_each_trio_run_starts_with_a_fresh_world() -> None:
    async def move_away() -> None:
        stage = SimStage(name="stage-fresh", position=1.0)
        await stage.open()
        await stage.move_abs(9.0)
        await stage.wait_settled()

    async def check_start() -> None:
        stage = SimStage(name="stage-fresh", position=1.0)
        await stage.open()
        assert (await stage.position()).value == 1.0

    run_mock_clock(move_away)
    run_mock_clock(check_start)


def test_bad_parameters_are_rejected_with_the_parameter_name() -> None:
    with pytest.raises(ValueError, match="velocity must be a number > 0"):
        SimStage(velocity=0)
    with pytest.raises(ValueError, match="low_limit 5 must be below high_limit 1"):
        SimStage(low_limit=5, high_limit=1)
    with pytest.raises(OutOfRange, match="initial position"):
        SimStage(position=30.0)


def test_satisfies_the_protocols_mypy_checks() -> None:
    movable: Movable = SimStage()
    stoppable: Stoppable = SimStage()
    assert isinstance(movable, Movable) and isinstance(stoppable, Stoppable)
