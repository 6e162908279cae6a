"""The 1830-C driver over real pyserial against a simulated power meter on a pty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from capabilities import DeviceDisconnected, OutOfRange, capabilities_of
from drivers.devices.newport_1830c import Newport1830CDevice
from drivers.newport_1830c import Newport1830C
from drivers.toolkit import UnexpectedReply


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Newport1830CDevice]:
    with Newport1830CDevice(link=tmp_path / "pm", power_w=2.5e-3) as device:
        yield device  # type: ignore[misc]


def test_reads_power_in_the_configured_units(meter: Newport1830CDevice) -> None:
    async def main() -> None:
        driver = Newport1830C(port=meter.port, units="dBm", wavelength_nm=1064, timeout_s=0.3)
        assert capabilities_of(driver) == ["Readable", "Configurable", "WavelengthTunable"]
        await driver.open()
        assert meter.wavelength_nm == 1064 and meter.units == 3
        reading = await driver.read()
        assert reading.unit == "dBm" and reading.value == pytest.approx(3.979, abs=1e-3)
        await driver.set_wavelength(633)
        assert await driver.wavelength() == 633.0 and meter.wavelength_nm == 633
        await driver.close()

    trio.run(main)


def test_wavelength_outside_the_detector_span_is_not_sent(meter: Newport1830CDevice) -> None:
    async def main() -> None:
        driver = Newport1830C(port=meter.port, timeout_s=0.3)
        await driver.open()
        with pytest.raises(OutOfRange, match="wavelength 2500 nm is outside"):
            await driver.set_wavelength(2500)
        await trio.sleep(0.05)
        assert not any(c.startswith("W2") for c in meter.received)
        await driver.close()

    trio.run(main)


def test_garbage_and_vanishing(meter: Newport1830CDevice) -> None:
    async def main() -> None:
        driver = Newport1830C(port=meter.port, timeout_s=0.3)
        await driver.open()
        meter.mode = "garbage"
        with pytest.raises(UnexpectedReply, match="to 'D\\?', expected a number"):
            await driver.read()
        meter.mode = "normal"
        meter.disappear()
        with pytest.raises(DeviceDisconnected, match=r"Newport 1830-C .* unreachable"):
            await driver.read()
        await driver.close()

    trio.run(main)


def test_bad_units_are_a_config_error() -> None:
    with pytest.raises(ValueError, match="units must be one of W, dB, dBm, REL"):
        Newport1830C(port="/dev/null", units="mW")


def test_parameters_wavelength_range_filter_units(tmp_path: Path) -> None:
    meter = Newport1830CDevice(link=tmp_path / "pm", power_w=2e-3, beam_nm=1064)
    with meter:

        async def main() -> None:
            driver = Newport1830C(port=meter.port, wavelength_nm=1064, timeout_s=0.3)
            params = {p.name: p for p in await driver.parameters()}
            assert list(params) == ["units", "wavelength", "filter", "range"]
            assert (params["wavelength"].kind, params["wavelength"].unit) == ("int", "nm")
            assert (params["wavelength"].low, params["wavelength"].high) == (400, 1800)
            assert params["units"].choices == ("W", "dB", "dBm", "REL")
            assert params["filter"].choices == ("slow", "medium", "fast")
            assert params["range"].choices == ("auto", "1", "2", "3", "4", "5", "6", "7", "8")
            assert all(p.description for p in params.values())

            await driver.open()
            assert (await driver.read()).value == pytest.approx(2e-3)
            await driver.set_parameter("wavelength", 633)
            assert await driver.get_parameter("wavelength") == 633 and meter.wavelength_nm == 633
            assert (await driver.read()).value != pytest.approx(2e-3, rel=0.01)  # miscorrected

            assert await driver.get_parameter("range") == "auto"
            await driver.set_parameter("range", "3")  # full scale 200 µW: it saturates
            assert await driver.get_parameter("range") == "3" and not meter.auto_range
            assert (await driver.read()).value == pytest.approx(2e-4)
            await driver.set_parameter("range", "auto")
            assert await driver.get_parameter("range") == "auto" and meter.auto_range

            await driver.set_parameter("filter", "slow")
            assert await driver.get_parameter("filter") == "slow" and meter.filter == 1
            await driver.set_parameter("units", "dBm")
            reading = await driver.read()
            assert reading.unit == "dBm" and await driver.get_parameter("units") == "dBm"

            with pytest.raises(OutOfRange, match="wavelength 2000 nm is outside"):
                await driver.set_parameter("wavelength", 2000)
            with pytest.raises(OutOfRange, match="'9' is not one of: auto, 1"):
                await driver.set_parameter("range", "9")
            with pytest.raises(OutOfRange, match="'mW' is not one of: W, dB, dBm, REL"):
                await driver.set_parameter("units", "mW")
            await trio.sleep(0.05)
            assert not any(c in ("W2000", "R9") for c in meter.received)
            await driver.close()

        trio.run(main)
