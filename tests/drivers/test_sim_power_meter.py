"""SimPowerMeter: a stage scan across the simulated beam finds the configured peak."""

import math

import pytest
import trio
import trio.testing

from capabilities import DeviceError, capabilities_of
from drivers.registry import driver_class
from drivers.sim.power_meter import SimPowerMeter
from drivers.sim.stage import SimStage


def run_mock_clock(afn: object) -> None:
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_registry_name_and_capabilities() -> None:
    assert driver_class("sim.power_meter") is SimPowerMeter
    assert capabilities_of(SimPowerMeter()) == [
        "Readable",
        "FaultInjectable",
        "Configurable",
        "WavelengthTunable",
    ]


def test_scanning_the_linked_stage_finds_the_peak_at_the_centre() -> None:
    async def main() -> None:
        stage = SimStage(name="meter-stage")
        meter = SimPowerMeter(stage="meter-stage", centre=2.25, width=0.5, peak_power=1e-3, seed=1)
        await stage.open()
        await meter.open()
        scan = []
        for i in range(25):
            await stage.move_abs(i * 0.25)
            position = (await stage.wait_settled()).value
            reading = await meter.read()
            assert reading.unit == "W"
            scan.append((reading.value, position))
        peak_power, peak_position = max(scan)
        assert peak_position == pytest.approx(2.25, abs=0.001)
        assert peak_power == pytest.approx(1e-3, rel=0.03)
        # One 1/e² radius away the power has fallen to e⁻² of the peak.
        at_width = dict((round(x, 2), p) for p, x in scan)[2.75]
        assert at_width == pytest.approx(1e-3 * math.exp(-2), rel=0.03)

    run_mock_clock(main)


def test_readings_are_noisy_around_the_profile() -> None:
    async def main() -> None:
        stage = SimStage(name="noise-stage", position=3.0)
        meter = SimPowerMeter(stage="noise-stage", centre=3.0, noise=0.01, noise_floor=0.0, seed=2)
        await stage.open()
        await meter.open()
        values = [(await meter.read()).value for _ in range(400)]
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        assert mean == pytest.approx(1e-3, rel=0.003)
        assert spread == pytest.approx(1e-5, rel=0.15)

    run_mock_clock(main)


def test_a_read_takes_the_integration_time() -> None:
    async def main() -> None:
        stage = SimStage(name="integration-stage")
        meter = SimPowerMeter(stage="integration-stage", integration_time=0.2)
        await stage.open()
        await meter.open()
        start = trio.current_time()
        await meter.read()
        assert trio.current_time() - start == pytest.approx(0.2)

    run_mock_clock(main)


def test_a_missing_stage_is_a_clear_device_error() -> None:
    async def main() -> None:
        meter = SimPowerMeter(stage="no-such-stage-for-the-meter")
        await meter.open()
        with pytest.raises(DeviceError, match=r"linked to 'no-such-stage-for-the-meter'.*config"):
            await meter.read()

    run_mock_clock(main)
