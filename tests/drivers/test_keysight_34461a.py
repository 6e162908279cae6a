"""The 34461A driver through the real pyvisa stack against a pyvisa-sim multimeter."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from capabilities import DeviceDisconnected, InvalidRequest, OutOfRange, Readable, capabilities_of
from drivers.devices import VisaTraffic, visa_library
from drivers.keysight_34461a import Keysight34461A

RESOURCE = "USB0::0x2A8D::0x1301::MY57216238::INSTR"


def make(**params: Any) -> Keysight34461A:
    return Keysight34461A(
        resource=RESOURCE, visa_library=visa_library("keysight_34461a"), timeout_s=0.5, **params
    )


def test_configures_the_function_and_range_then_reads() -> None:
    async def main() -> None:
        driver = make(function="volt:dc", range=10)
        assert capabilities_of(driver) == ["Readable", "Configurable"]
        assert isinstance(driver, Readable)
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


def test_function_range_and_nplc_parameters() -> None:
    async def main() -> None:
        driver = make(function="volt:dc", range=10)
        params = {p.name: p for p in await driver.parameters()}
        assert list(params) == ["function", "range", "nplc"]
        assert params["function"].choices == (
            "volt:dc",
            "volt:ac",
            "curr:dc",
            "curr:ac",
            "res",
            "fres",
        )
        assert params["range"].choices == ("auto", "0.1", "1", "10", "100", "1000")
        assert params["nplc"].choices == ("0.02", "0.2", "1", "10", "100")
        assert all(p.kind == "choice" and p.description for p in params.values())

        await driver.open()
        traffic = VisaTraffic(driver.connection.link._instrument)  # type: ignore[attr-defined]
        assert await driver.get_parameter("range") == "10"
        assert await driver.get_parameter("nplc") == "10"  # the meter's default
        await driver.set_parameter("nplc", "0.2")
        assert await driver.get_parameter("nplc") == "0.2"
        await driver.set_parameter("range", "auto")
        await driver.set_parameter("function", "curr:dc")
        assert "VOLT:DC:NPLC 0.2" in traffic.commands
        assert "CONF:VOLT:DC AUTO" in traffic.commands and "CONF:CURR:DC AUTO" in traffic.commands
        assert (await driver.read()).unit == "A"
        described = {p.name: p for p in await driver.parameters()}
        assert described["range"].choices[-1] == "10"  # 10 A: the ranges follow the function
        await driver.set_parameter("range", "0.001")
        assert "CONF:CURR:DC 0.001" in traffic.commands

        with pytest.raises(OutOfRange, match=r"'1000' is not one of: auto, 0.0001"):
            await driver.set_parameter("range", "1000")
        with pytest.raises(OutOfRange, match=r"'5' is not one of: 0.02, 0.2, 1, 10, 100"):
            await driver.set_parameter("nplc", "5")
        await driver.set_parameter("function", "volt:ac")
        with pytest.raises(InvalidRequest, match="nplc applies to DC and resistance"):
            await driver.set_parameter("nplc", "1")
        assert not any(c.endswith(("1000", "NPLC 5", "NPLC 1")) for c in traffic.commands)
        traffic.detach()
        await driver.close()

    trio.run(main)
