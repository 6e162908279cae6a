"""The ELL14 driver over real pyserial against a simulated mount on a pty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from capabilities import (
    DeviceDisconnected,
    DeviceTimeout,
    Movable,
    OutOfRange,
    Stoppable,
    capabilities_of,
)
from drivers.devices.thorlabs_ell14 import PULSES_PER_REVOLUTION, ELL14Device
from drivers.thorlabs_ell14 import ThorlabsELL14
from drivers.toolkit import UnexpectedReply


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[ELL14Device]:
    with ELL14Device(link=tmp_path / "ell14", degrees_per_s=1800.0) as device:
        yield device  # type: ignore[misc]


def make_driver(mount: ELL14Device) -> ThorlabsELL14:
    return ThorlabsELL14(port=mount.port, timeout_s=0.3)


def test_declares_movable_and_stoppable(mount: ELL14Device) -> None:
    driver = make_driver(mount)
    assert capabilities_of(driver) == ["Movable", "Stoppable", "Configurable"]
    assert isinstance(driver, Movable) and isinstance(driver, Stoppable)


def test_moves_in_degrees_using_the_pulses_the_mount_reports(mount: ELL14Device) -> None:
    async def main() -> None:
        driver = make_driver(mount)
        await driver.open()
        assert driver.pulses_per_degree == PULSES_PER_REVOLUTION / 360
        await driver.move_abs(90.0)
        mount.wait_received(f"0ma{PULSES_PER_REVOLUTION // 4:08X}")
        settled = await driver.wait_settled()
        assert settled.value == pytest.approx(90.0, abs=0.01) and settled.unit == "deg"
        await driver.move_rel(-45.0)  # a negative move travels as two's complement hex
        mount.wait_received("0mrFFFFBA00")
        assert (await driver.wait_settled()).value == pytest.approx(45.0, abs=0.01)
        await driver.close()

    trio.run(main)


def test_stop_halts_a_move_midway(mount: ELL14Device) -> None:
    async def main() -> None:
        mount.max_pulses_per_s = PULSES_PER_REVOLUTION / 2  # 180 deg/s: a 270 deg move takes 1.5 s
        driver = make_driver(mount)
        await driver.open()
        await driver.move_abs(270.0)
        await trio.sleep(0.2)
        await driver.stop()
        stopped = (await driver.wait_settled()).value
        assert 10 < stopped < 200
        await trio.sleep(0.2)
        assert (await driver.position()).value == pytest.approx(stopped)
        await driver.close()

    trio.run(main)


def test_out_of_range_is_refused_before_anything_is_sent(mount: ELL14Device) -> None:
    async def main() -> None:
        driver = make_driver(mount)
        await driver.open()
        seen = list(mount.received)
        with pytest.raises(OutOfRange, match="position 400 deg is outside"):
            await driver.move_abs(400.0)
        with pytest.raises(OutOfRange, match="relative move"):
            await driver.move_rel(-720.0)
        await trio.sleep(0.05)
        assert mount.received == seen
        await driver.close()

    trio.run(main)


def test_silent_garbage_and_vanished_mount_give_clear_errors(mount: ELL14Device) -> None:
    async def main() -> None:
        driver = make_driver(mount)
        await driver.open()
        mount.mode = "silent"
        with pytest.raises(DeviceTimeout, match=r"Thorlabs ELL14 at .* did not answer '0gp'"):
            await driver.position()
        mount.mode = "garbage"
        with pytest.raises(UnexpectedReply, match=r"answered .*garbage.* to '0gp'"):
            await driver.position()
        mount.mode = "normal"
        assert (await driver.position()).value == 0.0
        mount.disappear()
        with pytest.raises(DeviceDisconnected, match="unreachable while sending '0gp'"):
            await driver.position()
        await driver.close()
        # Reopening while it is gone fails clearly; once it is back, a fresh open works.
        with pytest.raises(DeviceDisconnected, match="cannot open"):
            await make_driver(mount).open()
        mount.reappear()
        again = make_driver(mount)
        await again.open()
        assert (await again.position()).value == 0.0
        await again.close()

    trio.run(main)


def test_jog_step_in_degrees_and_velocity_in_percent(mount: ELL14Device) -> None:
    async def main() -> None:
        driver = make_driver(mount)
        params = {p.name: p for p in await driver.parameters()}
        assert list(params) == ["jog_step", "velocity"]
        assert (params["jog_step"].unit, params["jog_step"].high) == ("deg", 360.0)
        assert (params["velocity"].kind, params["velocity"].unit) == ("int", "%")
        assert (params["velocity"].low, params["velocity"].high) == (1, 100)
        await driver.open()
        assert await driver.get_parameter("jog_step") == pytest.approx(5.0, abs=0.01)
        await driver.set_parameter("jog_step", 22.5)
        assert await driver.get_parameter("jog_step") == pytest.approx(22.5)
        assert mount.jog_pulses == PULSES_PER_REVOLUTION // 16

        async def move_time(target: float) -> float:
            start = trio.current_time()
            await driver.move_abs(target)
            await driver.wait_settled()
            return trio.current_time() - start

        fast = await move_time(180.0)  # 0.1 s at 1800 deg/s
        await driver.set_parameter("velocity", 25)
        assert await driver.get_parameter("velocity") == 25 and mount.velocity_percent == 25
        slow = await move_time(0.0)  # 0.4 s at a quarter of the speed
        assert slow > 2.5 * fast
        with pytest.raises(OutOfRange, match=r"velocity 150 % is outside \[1, 100\]"):
            await driver.set_parameter("velocity", 150)
        with pytest.raises(OutOfRange, match="jog_step 400 deg is outside"):
            await driver.set_parameter("jog_step", 400.0)
        assert not any(c.startswith("0sv96") for c in mount.received)
        await driver.close()

    trio.run(main)
