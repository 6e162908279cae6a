"""The simulators' parameters: each is listed with its kind, unit and range, reads back,
refuses what it must, and changes what the simulated instrument does."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from capabilities import (
    DeviceDisconnected,
    InvalidRequest,
    MeasurementInvalid,
    OutOfRange,
    Parameter,
    Roi,
    WavelengthTunable,
)
from drivers.sim.camera import SimCamera
from drivers.sim.power_meter import SimPowerMeter, responsivity
from drivers.sim.power_supply import SimPowerSupply
from drivers.sim.stage import SimStage
from drivers.sim.thermometer import SimThermometer


def run_mock_clock(afn: object) -> None:
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


async def described(instrument: object) -> dict[str, Parameter]:
    parameters = await instrument.parameters()  # type: ignore[attr-defined]
    assert all(p.description for p in parameters), parameters
    return {p.name: p for p in parameters}


def test_camera_parameters_are_listed_without_opening_it() -> None:
    async def main() -> None:
        params = await described(SimCamera())
        assert list(params) == ["gain", "binning", "trigger_mode"]
        assert (params["gain"].kind, params["gain"].low, params["gain"].high) == ("float", 0.1, 16)
        assert params["binning"].choices == ("1", "2", "4")
        assert params["trigger_mode"].choices == ("internal", "software")

    trio.run(main)


def test_camera_gain_scales_the_counts_above_the_bias() -> None:
    async def main() -> None:
        camera = SimCamera(seed=3, drift_amplitude=0.0, read_noise=0.0, background_rate=0.0)
        await camera.open()
        await camera.set_roi(Roi(1000, 1000, 48, 48))
        one = (await camera.snap()).data.astype(np.float64) - 100.0
        await camera.set_parameter("gain", 2.0)
        assert await camera.get_parameter("gain") == 2.0
        two = (await camera.snap()).data.astype(np.float64) - 100.0
        assert two.sum() / one.sum() == pytest.approx(2.0, rel=0.02)
        with pytest.raises(OutOfRange, match=r"gain 40\s+is outside \[0.1, 16\]"):
            await camera.set_parameter("gain", 40.0)
        assert camera.gain == 2.0

    run_mock_clock(main)


def test_camera_binning_shrinks_frames_and_sums_the_electrons() -> None:
    async def main() -> None:
        camera = SimCamera(seed=3, drift_amplitude=0.0, read_noise=0.0, background_rate=0.0)
        await camera.open()
        await camera.set_roi(Roi(992, 992, 64, 64))
        await camera.set_exposure(0.001)  # 2000 e⁻ at the spot's peak: 16 of them still fit
        full = (await camera.snap()).data.astype(np.float64) - 100.0
        await camera.set_parameter("binning", "4")
        assert await camera.get_parameter("binning") == "4"
        assert (await camera.frame_format()).height == 16
        binned = await camera.snap()
        assert binned.data.shape == (16, 16)
        signal = binned.data.astype(np.float64) - 100.0  # the bias counts once per bin
        assert signal.sum() == pytest.approx(full.sum(), rel=0.02)
        assert signal.max() > 10 * full.max()
        with pytest.raises(OutOfRange, match="'3' is not one of: 1, 2, 4"):
            await camera.set_parameter("binning", "3")
        with pytest.raises(InvalidRequest, match="smaller than one 4×4 bin"):
            await camera.set_roi(Roi(0, 0, 2, 2))

    run_mock_clock(main)


def test_camera_in_software_trigger_mode_takes_frames_only_when_triggered() -> None:
    async def main() -> None:
        camera = SimCamera(seed=1)
        await camera.open()
        await camera.set_roi(Roi(0, 0, 64, 64))
        await camera.set_parameter("trigger_mode", "software")
        with pytest.raises(InvalidRequest, match=r"software trigger mode: arm\(\) and trigger"):
            await camera.snap()
        await camera.arm()
        await camera.trigger()
        assert (await camera.snap()).seq == 1
        await camera.set_parameter("trigger_mode", "internal")
        assert (await camera.snap()).seq == 2

    run_mock_clock(main)


def test_stage_velocity_and_acceleration_shape_the_next_move() -> None:
    async def main() -> None:
        stage = SimStage(name="param-stage", settle_time=0.0, overshoot=0.0)
        params = await described(stage)
        assert (params["velocity"].unit, params["acceleration"].unit) == ("mm/s", "mm/s^2")
        assert await described(SimStage(unit="deg")) != params  # units follow the axis
        await stage.open()

        async def move_time(target: float) -> float:
            start = trio.current_time()
            await stage.move_abs(target)
            await stage.wait_settled()
            return trio.current_time() - start

        slow = move_time
        await stage.set_parameter("velocity", 5.0)
        at_5 = await slow(10.0)  # 2 s cruising plus 2 × 25 ms ramps
        await stage.set_parameter("velocity", 20.0)
        at_20 = await move_time(0.0)
        assert at_5 == pytest.approx(10 / 5 + 5 / 200)
        assert at_20 == pytest.approx(10 / 20 + 20 / 200)
        await stage.set_parameter("acceleration", 20.0)  # too soft to reach 20 mm/s in 10 mm
        assert await move_time(10.0) == pytest.approx(2 * (10 / 20) ** 0.5)
        assert await stage.get_parameter("acceleration") == 20.0
        with pytest.raises(OutOfRange, match="velocity 0 mm/s is outside"):
            await stage.set_parameter("velocity", 0.0)

    run_mock_clock(main)


def test_sim_parameters_fault_like_every_call_and_need_the_instrument_open() -> None:
    async def main() -> None:
        stage = SimStage(name="closed-stage")
        with pytest.raises(DeviceDisconnected, match="not open"):
            await stage.get_parameter("velocity")
        await stage.open()
        await stage.inject_fault("disconnect")
        with pytest.raises(DeviceDisconnected):
            await stage.set_parameter("velocity", 3.0)
        assert stage.velocity == 20.0

    run_mock_clock(main)


def test_power_meter_wavelength_corrects_the_responsivity() -> None:
    async def main() -> None:
        stage = SimStage(name="wl-stage", position=3.0)
        meter = SimPowerMeter(stage="wl-stage", noise=0.0, noise_floor=0.0, background=0.0)
        assert isinstance(meter, WavelengthTunable)
        params = await described(meter)
        assert (params["wavelength"].unit, params["wavelength"].low) == ("nm", 400.0)
        assert params["range"].choices[0] == "auto"
        await stage.open()
        await meter.open()
        assert (await meter.read()).value == pytest.approx(1e-3)  # set to the beam's 1064 nm
        await meter.set_parameter("wavelength", 633.0)
        assert await meter.wavelength() == 633.0
        expected = 1e-3 * responsivity(1064) / responsivity(633)
        assert (await meter.read()).value == pytest.approx(expected)
        await meter.set_wavelength(1064.0)
        assert await meter.get_parameter("wavelength") == 1064.0
        with pytest.raises(OutOfRange, match=r"wavelength 2500 nm is outside \[400, 1800\] nm"):
            await meter.set_parameter("wavelength", 2500.0)

    run_mock_clock(main)


def test_power_meter_reading_above_a_fixed_range_is_an_over_range_error() -> None:
    async def main() -> None:
        stage = SimStage(name="range-stage", position=3.0)
        meter = SimPowerMeter(stage="range-stage", noise=0.0, noise_floor=0.0)
        await stage.open()
        await meter.open()
        await meter.set_parameter("range", "10 mW")
        assert (await meter.read()).value == pytest.approx(1e-3, rel=1e-3)
        await meter.set_parameter("range", "100 uW")
        with pytest.raises(MeasurementInvalid, match=r"over range.*above the 100 uW full scale"):
            await meter.read()
        with pytest.raises(OutOfRange, match="'5 mW' is not one of: auto, 10 uW"):
            await meter.set_parameter("range", "5 mW")
        await meter.set_parameter("range", "auto")
        assert (await meter.read()).value == pytest.approx(1e-3, rel=1e-3)

    run_mock_clock(main)


def test_power_supply_over_voltage_protection_trips_the_output() -> None:
    async def main() -> None:
        psu = SimPowerSupply(name="ovp-psu", voltage_noise=0.0, current_noise=0.0)
        params = await described(psu)
        ovp = params["over_voltage_protection"]
        assert (ovp.unit, ovp.low) == ("V", 0.0) and ovp.high == pytest.approx(33.0)
        assert not params["protection_tripped"].writable
        await psu.open()
        await psu.set_voltage(5.0)
        await psu.set_on(True)
        await psu.set_parameter("over_voltage_protection", 8.0)
        assert await psu.is_on()
        await psu.set_voltage(9.0)  # above the level with output on: trips
        assert not await psu.is_on()
        assert await psu.get_parameter("protection_tripped") is True
        assert (await psu.readback()).voltage.value == 0.0
        await psu.set_voltage(6.0)
        await psu.set_on(True)  # clears the trip
        assert await psu.get_parameter("protection_tripped") is False
        await psu.set_parameter("over_voltage_protection", 5.5)  # below the set point: trips
        assert not await psu.is_on() and psu.protection_tripped
        with pytest.raises(InvalidRequest, match="protection_tripped is read-only"):
            await psu.set_parameter("protection_tripped", False)
        with pytest.raises(OutOfRange, match="over_voltage_protection 40 V is outside"):
            await psu.set_parameter("over_voltage_protection", 40.0)

    run_mock_clock(main)


def test_the_thermometer_has_no_parameters_yet() -> None:
    async def main() -> None:
        assert list(await SimThermometer().parameters()) == []

    trio.run(main)
