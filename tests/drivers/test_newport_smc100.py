"""The SMC100 driver over real pyserial against a simulated controller on a pty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from capabilities import DeviceTimeout, OutOfRange, capabilities_of
from drivers.devices.newport_smc100 import SMC100Device
from drivers.newport_smc100 import NewportSMC100
from drivers.toolkit import CommandRejected, UnexpectedReply


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[SMC100Device]:
    with SMC100Device(link=tmp_path / "smc100", mm_per_s=50.0) as device:
        yield device  # type: ignore[misc]


def test_moves_reads_limits_and_stops(controller: SMC100Device) -> None:
    async def main() -> None:
        driver = NewportSMC100(port=controller.port, timeout_s=0.3)
        assert capabilities_of(driver) == ["Movable", "Stoppable", "Configurable"]
        await driver.open()
        limits = await driver.limits()
        assert (limits.low, limits.high, limits.unit) == (-12.5, 12.5, "mm")
        await driver.move_abs(5.0)
        controller.wait_received("1PA5")
        assert (await driver.wait_settled()).value == pytest.approx(5.0)
        await driver.move_rel(-2.5)
        assert (await driver.wait_settled()).value == pytest.approx(2.5)
        controller.velocity = 5.0
        await driver.move_abs(-10.0)
        await trio.sleep(0.1)
        await driver.stop()
        stopped = (await driver.wait_settled()).value
        assert -10.0 < stopped < 2.5
        await driver.close()

    trio.run(main)


def test_moves_beyond_the_software_limits_never_reach_the_controller(
    controller: SMC100Device,
) -> None:
    async def main() -> None:
        driver = NewportSMC100(port=controller.port, timeout_s=0.3)
        await driver.open()
        seen = len(controller.received)
        with pytest.raises(
            OutOfRange, match=r"target_position 20 mm is outside \[-12.5, 12.5\] mm"
        ):
            await driver.move_abs(20.0)
        with pytest.raises(OutOfRange, match="target of a relative move"):
            await driver.move_rel(-13.0)
        # move_rel asked for the position (TP) to compute the target, and sent nothing else.
        assert [c for c in controller.received[seen:] if not c.endswith("TP")] == []
        await driver.close()

    trio.run(main)


def test_an_unreferenced_controller_refuses_moves_with_the_manuals_reason(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        with SMC100Device(link=tmp_path / "smc", referenced=False) as controller:
            driver = NewportSMC100(port=controller.port, timeout_s=0.3)
            await driver.open()
            with pytest.raises(CommandRejected, match="H: command not allowed in NOT REFERENCED"):
                await driver.move_abs(1.0)
            await driver.close()
            homing = NewportSMC100(port=controller.port, timeout_s=0.3, home_on_open=True)
            await homing.open()
            controller.wait_received("1OR")
            await homing.move_abs(1.0)
            assert (await homing.wait_settled()).value == pytest.approx(1.0)
            await homing.close()

    trio.run(main)


def test_silent_and_garbage_controllers(controller: SMC100Device) -> None:
    async def main() -> None:
        driver = NewportSMC100(port=controller.port, timeout_s=0.2)
        await driver.open()
        controller.mode = "silent"
        with pytest.raises(DeviceTimeout, match=r"Newport SMC100 at .* did not answer '1TP'"):
            await driver.position()
        controller.mode = "garbage"
        # A move is not answered, but its error check (TE) is: garbage there is named too.
        with pytest.raises(UnexpectedReply, match="to '1TE'"):
            await driver.move_abs(1.0)
        await driver.close()

    trio.run(main)


def test_velocity_and_acceleration_parameters(controller: SMC100Device) -> None:
    async def main() -> None:
        driver = NewportSMC100(port=controller.port, timeout_s=0.3)
        params = {p.name: p for p in await driver.parameters()}
        assert list(params) == ["velocity", "acceleration"]
        assert (params["velocity"].unit, params["acceleration"].unit) == ("mm/s", "mm/s^2")
        assert params["velocity"].low == 1e-6 and all(p.description for p in params.values())
        await driver.open()
        assert await driver.get_parameter("velocity") == 50.0

        async def move_time(target: float) -> float:
            start = trio.current_time()
            await driver.move_abs(target)
            await driver.wait_settled()
            return trio.current_time() - start

        await driver.set_parameter("velocity", 10.0)
        assert controller.velocity == 10.0
        slow = await move_time(5.0)  # 0.5 s
        await driver.set_parameter("velocity", 100.0)
        fast = await move_time(0.0)  # 0.05 s
        assert slow > 4 * fast
        await driver.set_parameter("acceleration", 120.0)
        assert await driver.get_parameter("acceleration") == 120.0
        with pytest.raises(OutOfRange, match="velocity 0 mm/s is outside"):
            await driver.set_parameter("velocity", 0.0)
        assert "1VA0" not in controller.received
        await driver.close()

    trio.run(main)
