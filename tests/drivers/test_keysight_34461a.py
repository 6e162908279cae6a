"""The 34461A driver through the real pyvisa stack against a pyvisa-sim multimeter."""

from __future__ import annotations

import pytest
import trio

from capabilities import DeviceDisconnected, Readable, capabilities_of
from drivers.devices import VisaTraffic, visa_library
from drivers.keysight_34461a import Keysight34461A

RESOURCE = "USB0::0x2A8D::0x1301::MY57216238::INSTR"


def make(**params: object) -> Keysight34461A:
    return Keysight34461A(
        resource=RESOURCE, visa_library=visa_library("keysight_34461a"), timeout_s=0.5, **params
    )


def test_configures_the_function_and_range_then_reads() -> None:
    async def main() -> None:
        driver = make(function="volt:dc", range=10)
        assert capabilities_of(driver) == ["Readable"] and isinstance(driver, Readable)
        await driver.open()
        traffic = VisaTraffic(driver.connection.link._instrument)  # type: ignore[attr-defined]
        reading = await driver.read()
        assert reading.value == pytest.approx(1.23456789) and reading.unit == "V"
        assert traffic.commands == ["READ?"]
        traffic.detach()
        await driver.close()

    trio.run(main)


def test_auto_range_for_resistance() -> None:
    async def main() -> None:
        driver = make(function="res")
        await driver.open()
        assert (await driver.read()).unit == "Ohm"
        await driver.close()

    trio.run(main)


def test_bad_function_or_range_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="function must be one of volt:dc"):
        make(function="volts")
    with pytest.raises(ValueError, match=r"range 3 V is not one of: auto, 0\.1, 1, 10"):
        make(function="volt:dc", range=3)


def test_a_session_that_vanishes_is_reported_as_disconnected() -> None:
    async def main() -> None:
        driver = make()
        await driver.open()
        instrument = driver.connection.link._instrument  # type: ignore[attr-defined]
        # What a pulled USB cable does to a VISA session: the library invalidates it.
        instrument.visalib.close(instrument.session)
        with pytest.raises(DeviceDisconnected, match=r"34461A at USB0::.* unreachable.*'READ\?'"):
            await driver.read()
        await driver.close()
        again = make()
        await again.open()
        assert (await again.read()).unit == "V"
        await again.close()

    trio.run(main)


def test_a_missing_resource_fails_to_open_clearly() -> None:
    async def main() -> None:
        driver = Keysight34461A(
            resource="USB0::0x2A8D::0x1301::NOTTHERE::INSTR",
            visa_library=visa_library("keysight_34461a"),
        )
        with pytest.raises(DeviceDisconnected, match=r"cannot open.*list_resources"):
            await driver.open()

    trio.run(main)
