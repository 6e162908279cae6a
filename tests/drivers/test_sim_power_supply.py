"""SimPowerSupply: constant voltage into a load, constant current at the limit, off is 0."""

import pytest
import trio

from capabilities import OutOfRange, SupplyReadback, capabilities_of
from drivers.registry import driver_class
from drivers.sim.power_supply import SimPowerSupply
from drivers.sim.world import HEATING_POWER, current_world


def quiet_supply(**params: object) -> SimPowerSupply:
    return SimPowerSupply(voltage_noise=0.0, current_noise=0.0, **params)  # type: ignore[arg-type]


def volts_amps(readback: SupplyReadback) -> tuple[object, ...]:
    return readback.voltage.value, readback.current.value, readback.in_compliance


def test_registry_name_and_capabilities() -> None:
    assert driver_class("sim.power_supply") is SimPowerSupply
    assert capabilities_of(SimPowerSupply()) == [
        "VoltageSource",
        "Switchable",
        "FaultInjectable",
        "Configurable",
    ]


def test_voltage_mode_below_the_current_limit() -> None:
    async def main() -> None:
        psu = quiet_supply(load_resistance=10.0)
        await psu.open()
        await psu.set_voltage(3.0)
        await psu.set_current_limit(0.5)
        assert (await psu.voltage_setpoint(), await psu.current_limit()) == (3.0, 0.5)
        await psu.set_on(True)
        assert await psu.is_on()
        assert volts_amps(await psu.readback()) == (3.0, pytest.approx(0.3), False)

    trio.run(main)


def test_compliance_holds_the_current_and_drops_the_voltage() -> None:
    async def main() -> None:
        psu = quiet_supply(load_resistance=10.0, current_limit=0.5, output=True)
        await psu.open()
        await psu.set_voltage(10.0)  # would draw 1 A
        readback = await psu.readback()
        assert volts_amps(readback) == (pytest.approx(5.0), 0.5, True)
        assert readback.voltage.unit == "V" and readback.current.unit == "A"
        await psu.set_current_limit(2.0)  # raising the limit leaves compliance
        assert volts_amps(await psu.readback()) == (10.0, pytest.approx(1.0), False)

    trio.run(main)


def test_off_reads_zero() -> None:
    async def main() -> None:
        psu = SimPowerSupply(voltage=12.0, output=True)
        await psu.open()
        await psu.set_on(False)
        assert not await psu.is_on()
        assert volts_amps(await psu.readback()) == (0.0, 0.0, False)

    trio.run(main)


def test_readback_noise_is_small_and_real() -> None:
    async def main() -> None:
        psu = SimPowerSupply(voltage=5.0, output=True, voltage_noise=1e-3, seed=4)
        await psu.open()
        volts = [(await psu.readback()).voltage.value for _ in range(50)]
        assert len(set(volts)) == 50
        assert all(abs(v - 5.0) < 6e-3 for v in volts)

    trio.run(main)


def test_set_points_outside_the_ranges_are_refused() -> None:
    async def main() -> None:
        psu = quiet_supply(max_voltage=30.0, max_current=3.0)
        await psu.open()
        with pytest.raises(OutOfRange, match=r"voltage 31 V is outside \[0, 30\] V"):
            await psu.set_voltage(31.0)
        with pytest.raises(OutOfRange):
            await psu.set_voltage(-1.0)
        with pytest.raises(OutOfRange, match="current limit 4 A"):
            await psu.set_current_limit(4.0)
        assert await psu.voltage_setpoint() == 0.0

    trio.run(main)


def test_output_power_is_published_for_a_heated_sample() -> None:
    async def main() -> None:
        psu = quiet_supply(name="psu-power", load_resistance=4.0)
        await psu.open()
        power = current_world().lookup("psu-power", HEATING_POWER, wanted_by="test")
        await psu.set_voltage(2.0)
        await psu.set_on(True)
        assert power.value_at(trio.current_time()) == pytest.approx(1.0)  # 2 V · 0.5 A

    trio.run(main)


def test_a_restarted_driver_finds_the_supply_as_it_was_left() -> None:
    async def main() -> None:
        first = quiet_supply(name="psu-restart", load_resistance=10.0)
        await first.open()
        await first.set_voltage(4.0)
        await first.set_on(True)
        await first.close()
        # The supervisor restarts an instrument with a fresh driver from the same config.
        second = quiet_supply(name="psu-restart", load_resistance=10.0)
        await second.open()
        assert await second.is_on() and await second.voltage_setpoint() == 4.0
        assert volts_amps(await second.readback()) == (4.0, pytest.approx(0.4), False)

    trio.run(main)


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="load_resistance must be a number > 0"):
        SimPowerSupply(load_resistance=0.0)
    with pytest.raises(OutOfRange, match="current_limit"):
        SimPowerSupply(current_limit=5.0, max_current=3.0)
