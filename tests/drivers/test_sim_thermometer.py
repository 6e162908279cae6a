"""SimThermometer: kelvin with drift and noise, heated by a linked supply."""

import math

import pytest
import trio
import trio.testing

from capabilities import DeviceError, capabilities_of
from drivers.registry import driver_class
from drivers.sim.power_supply import SimPowerSupply
from drivers.sim.thermometer import SimThermometer


def run_mock_clock(afn: object) -> None:
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_registry_name_and_capabilities() -> None:
    assert driver_class("sim.thermometer") is SimThermometer
    assert capabilities_of(SimThermometer()) == [
        "TemperatureSensor",
        "FaultInjectable",
        "Configurable",
    ]


def test_reads_kelvin_with_noise_around_the_base() -> None:
    async def main() -> None:
        thermo = SimThermometer(temperature=77.0, noise=0.01, drift_amplitude=0.0, seed=5)
        await thermo.open()
        readings = [await thermo.temperature() for _ in range(400)]
        assert {r.unit for r in readings} == {"K"}
        values = [r.value for r in readings]
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        assert mean == pytest.approx(77.0, abs=0.003)
        assert spread == pytest.approx(0.01, rel=0.15)

    run_mock_clock(main)


def test_drifts_slowly() -> None:
    async def main() -> None:
        thermo = SimThermometer(noise=0.0, drift_amplitude=0.5, drift_period=100.0)
        await thermo.open()
        first = (await thermo.temperature()).value
        await trio.sleep(1.0)  # a small change after a second...
        assert 0 < abs((await thermo.temperature()).value - first) < 0.04
        seen = []
        for _ in range(10):
            await trio.sleep(10.0)
            seen.append((await thermo.temperature()).value)
        assert max(seen) - min(seen) == pytest.approx(1.0, abs=0.1)  # ...the full swing in a period

    run_mock_clock(main)


def test_heated_by_the_linked_supply_as_a_first_order_system() -> None:
    async def main() -> None:
        psu = SimPowerSupply(name="heater-psu", load_resistance=10.0, voltage_noise=0.0)
        thermo = SimThermometer(
            supply="heater-psu",
            temperature=300.0,
            noise=0.0,
            drift_amplitude=0.0,
            thermal_resistance=2.0,
            thermal_time_constant=1.0,
        )
        await psu.open()
        await thermo.open()
        await psu.set_voltage(5.0)  # 2.5 W into the load: 5 K above base when steady
        await psu.set_on(True)
        await trio.sleep(1.0)
        assert (await thermo.temperature()).value == pytest.approx(300.0 + 5.0 * (1 - math.exp(-1)))
        await trio.sleep(9.0)
        assert (await thermo.temperature()).value == pytest.approx(305.0, abs=0.001)
        await psu.set_on(False)
        await trio.sleep(2.0)
        assert (await thermo.temperature()).value == pytest.approx(
            300.0 + 5.0 * math.exp(-2), abs=0.001
        )

    run_mock_clock(main)


def test_heating_does_not_depend_on_how_often_it_is_read() -> None:
    async def main() -> None:
        psu = SimPowerSupply(name="poll-psu", load_resistance=10.0)
        often, seldom = (
            SimThermometer(
                supply="poll-psu", noise=0.0, drift_amplitude=0.0, thermal_time_constant=2.0
            )
            for _ in range(2)
        )
        await psu.open()
        await often.open()
        await seldom.open()
        await psu.set_on(True)
        for volts in (3.0, 8.0, 0.0, 5.0):
            await psu.set_voltage(volts)
            for _ in range(7):
                await trio.sleep(0.1)
                await often.temperature()
        often_value, seldom_value = (
            (await often.temperature()).value,
            (await seldom.temperature()).value,
        )
        assert often_value == pytest.approx(seldom_value, abs=1e-9)
        assert often_value > 295.0  # it did heat

    run_mock_clock(main)


def test_a_restarted_thermometer_carries_on_from_the_heat_in_the_sample() -> None:
    async def main() -> None:
        psu = SimPowerSupply(name="restart-psu", load_resistance=10.0, voltage=5.0, output=True)
        params = dict(name="restart-thermo", supply="restart-psu", noise=0.0, drift_amplitude=0.0)
        first = SimThermometer(**params)  # type: ignore[arg-type]
        await psu.open()
        await first.open()
        await trio.sleep(3.0)
        before = (await first.temperature()).value
        await first.close()
        await trio.sleep(2.0)  # the sample keeps heating while no driver looks
        second = SimThermometer(**params)  # type: ignore[arg-type]
        await second.open()
        # 2.5 W · 2 K/W = 5 K when steady, τ = 5 s, heating since the supply opened 5 s ago.
        expected = 295.0 + 5.0 * (1 - math.exp(-5.0 / 5.0))
        assert before < (await second.temperature()).value == pytest.approx(expected)

    run_mock_clock(main)


def test_a_missing_supply_is_a_clear_device_error() -> None:
    async def main() -> None:
        thermo = SimThermometer(supply="no-such-psu")
        await thermo.open()
        with pytest.raises(DeviceError, match="linked to 'no-such-psu'"):
            await thermo.temperature()

    run_mock_clock(main)
