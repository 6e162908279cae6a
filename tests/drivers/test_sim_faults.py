"""Fault injection: every simulated instrument can raise, hang or disconnect on purpose,
and a close + open (what the supervisor's restart does) heals it."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from capabilities import DeviceDisconnected, DeviceError, FaultInjectable, InvalidRequest
from drivers.sim.camera import SimCamera
from drivers.sim.power_meter import SimPowerMeter
from drivers.sim.power_supply import SimPowerSupply
from drivers.sim.stage import SimStage
from drivers.sim.thermometer import SimThermometer


def run_mock_clock(afn: Callable[[], Awaitable[None]]) -> None:
    trio.run(afn, clock=trio.testing.MockClock(autojump_threshold=0))


# Each instrument with one of its capability calls. The meter reads a stage that exists.
INSTRUMENTS: dict[str, tuple[Callable[..., Any], Callable[[Any], Awaitable[object]]]] = {
    "stage": (SimStage, lambda stage: stage.position()),
    "camera": (SimCamera, lambda camera: camera.exposure()),
    "meter": (lambda **kw: SimPowerMeter(stage="faults-stage", **kw), lambda meter: meter.read()),
    "thermo": (SimThermometer, lambda thermo: thermo.temperature()),
    "psu": (SimPowerSupply, lambda psu: psu.readback()),
}


@pytest.fixture(params=sorted(INSTRUMENTS))
def instrument(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def opened(kind: str, **knobs: int) -> tuple[Any, Callable[[], Awaitable[object]]]:
    # The meter needs its stage in the world; opening one publishes it.
    await SimStage(name="faults-stage").open()
    factory, call = INSTRUMENTS[kind]
    device = factory(**knobs)
    await device.open()
    assert isinstance(device, FaultInjectable)
    return device, lambda: call(device)


def test_calls_before_open_are_refused(instrument: str) -> None:
    async def main() -> None:
        factory, call = INSTRUMENTS[instrument]
        with pytest.raises(DeviceDisconnected, match="not open"):
            await call(factory())

    run_mock_clock(main)


def test_injected_raise_persists_until_reopened(instrument: str) -> None:
    async def main() -> None:
        device, call = await opened(instrument)
        await call()
        await device.inject_fault("raise")
        for _ in range(3):
            with pytest.raises(DeviceError, match="simulated device error") as caught:
                await call()
            assert not isinstance(caught.value, DeviceDisconnected)
        await device.close()
        await device.open()
        await call()

    run_mock_clock(main)


def test_injected_hang_never_returns(instrument: str) -> None:
    async def main() -> None:
        device, call = await opened(instrument)
        await device.inject_fault("hang")
        with trio.move_on_after(3600) as scope:  # the supervisor's call timeout, in virtual time
            await call()
        assert scope.cancelled_caught
        await device.close()
        await device.open()
        with trio.fail_after(60):
            await call()

    run_mock_clock(main)


def test_injected_disconnect_drops_the_link(instrument: str) -> None:
    async def main() -> None:
        device, call = await opened(instrument)
        await device.inject_fault("disconnect")
        for _ in range(2):
            with pytest.raises(DeviceDisconnected, match="simulated disconnect"):
                await call()
        await device.close()
        await device.open()
        await call()

    run_mock_clock(main)


def test_clear_undoes_an_injected_fault(instrument: str) -> None:
    async def main() -> None:
        device, call = await opened(instrument)
        await device.inject_fault("raise")
        with pytest.raises(DeviceError):
            await call()
        await device.inject_fault("clear")
        await call()

    run_mock_clock(main)


def test_unknown_fault_kind_is_an_invalid_request() -> None:
    async def main() -> None:
        device, call = await opened("stage")
        with pytest.raises(
            InvalidRequest, match=r"unknown fault kind 'melt'.*raise, hang, disconnect, clear"
        ):
            await device.inject_fault("melt")
        await call()  # the instrument is fine

    run_mock_clock(main)


def test_fail_after_calls_counts_again_after_each_open(instrument: str) -> None:
    async def main() -> None:
        device, call = await opened(instrument, fail_after_calls=2)
        for _ in range(2):  # a restart heals it, and it fails again after two calls
            await call()
            await call()
            with pytest.raises(DeviceError, match="simulated device error"):
                await call()
            with pytest.raises(DeviceError):
                await call()
            await device.close()
            await device.open()

    run_mock_clock(main)


def test_hang_after_calls() -> None:
    async def main() -> None:
        _, call = await opened("psu", hang_after_calls=1)
        await call()
        with trio.move_on_after(3600) as scope:
            await call()
        assert scope.cancelled_caught

    run_mock_clock(main)


def test_disconnect_after_calls() -> None:
    async def main() -> None:
        _, call = await opened("thermo", disconnect_after_calls=0)
        with pytest.raises(DeviceDisconnected):
            await call()

    run_mock_clock(main)


def test_the_knob_that_strikes_first_stays() -> None:
    async def main() -> None:
        _, call = await opened("stage", disconnect_after_calls=1, fail_after_calls=2)
        await call()
        for _ in range(3):
            with pytest.raises(DeviceDisconnected):
                await call()

    run_mock_clock(main)


def test_bad_knobs_are_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="fail_after_calls must be a whole number >= 0"):
        SimStage(fail_after_calls=-1)
    with pytest.raises(ValueError, match="hang_after_calls"):
        SimCamera(hang_after_calls=1.5)  # type: ignore[arg-type]
