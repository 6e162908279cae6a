"""A SCPI instrument configured only in TOML, through real pyvisa against pyvisa-sim."""

from __future__ import annotations

import tomllib

import pytest
import trio

from capabilities import DeviceTimeout, Movable, OutOfRange, capabilities_of
from drivers.devices import VisaTraffic, visa_library
from drivers.registry import driver_class
from drivers.scpi_generic import GenericSCPI
from drivers.toolkit import CommandRejected, UnexpectedReply

CONFIG = """
[instruments.att]
driver = "scpi.generic"
resource = "TCPIP0::10.0.0.7::inst0::INSTR"
model = "ACME ATT-100"
timeout_s = 0.3
readable = { query = "MEAS:VOLT?", unit = "V" }
movable = { set = "POS %g", get = "POS?", min = -50, max = 50, unit = "mm", settled = "*OPC?" }
stoppable = { command = "ABOR" }
switchable = { set = "OUTP %d", get = "OUTP?" }
"""


def from_config(**overrides: object) -> GenericSCPI:
    table = tomllib.loads(CONFIG)["instruments"]["att"]
    table.pop("driver")
    table["visa_library"] = visa_library("scpi_generic")
    table.update(overrides)
    instrument: GenericSCPI = driver_class("scpi.generic")(**table)
    return instrument


def test_has_exactly_the_configured_capabilities() -> None:
    assert capabilities_of(from_config()) == [
        "Movable",
        "Stoppable",
        "Readable",
        "Switchable",
        "Configurable",
    ]
    only_readable = from_config(movable=None, stoppable=None, switchable=None)
    assert capabilities_of(only_readable) == ["Readable", "Configurable"]
    assert not isinstance(only_readable, Movable)


def test_works_from_the_config_alone() -> None:
    async def main() -> None:
        att = from_config()
        await att.open()
        reading = await att.read()  # type: ignore[attr-defined]
        assert (reading.value, reading.unit) == (1.5, "V")
        await att.move_abs(12.5)  # type: ignore[attr-defined]
        settled = await att.wait_settled()  # type: ignore[attr-defined]
        assert (settled.value, settled.unit) == (12.5, "mm")
        await att.move_rel(-2.5)  # type: ignore[attr-defined]
        assert (await att.position()).value == 10.0  # type: ignore[attr-defined]
        await att.set_on(True)  # type: ignore[attr-defined]
        assert await att.is_on()  # type: ignore[attr-defined]
        await att.stop()  # type: ignore[attr-defined]
        await att.close()

    trio.run(main)


def test_range_is_checked_before_sending_and_device_errors_are_reported() -> None:
    async def main() -> None:
        att = from_config()
        await att.open()
        traffic = VisaTraffic(att.connection.link._instrument)  # type: ignore[attr-defined]
        with pytest.raises(OutOfRange, match=r"position 80 mm is outside \[-50, 50\] mm"):
            await att.move_abs(80.0)  # type: ignore[attr-defined]
        assert traffic.commands == []
        traffic.detach()
        # A command the instrument does not know lands in its error queue.
        with pytest.raises(CommandRejected, match=r"rejected 'BOGUS': -113,\"Undefined header\""):
            await att.write("BOGUS")
        await att.close()

    trio.run(main)


def test_misconfigured_queries_time_out_or_read_garbage_with_clear_messages() -> None:
    async def main() -> None:
        silent = from_config(readable={"query": "MEAS:CURR?", "unit": "A"})
        await silent.open()
        with pytest.raises(
            DeviceTimeout, match=r"ACME ATT-100 at TCPIP0.* did not answer 'MEAS:CURR\?'"
        ):
            await silent.read()  # type: ignore[attr-defined]
        await silent.close()
        wrong = from_config(readable={"query": "*IDN?"})
        await wrong.open()
        with pytest.raises(UnexpectedReply, match=r"answered 'ACME,ATT-100,0001,1.0' .* a number"):
            await wrong.read()  # type: ignore[attr-defined]
        await wrong.close()

    trio.run(main)


def test_config_mistakes_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="at least one capability table"):
        GenericSCPI(resource="TCPIP0::10.0.0.7::inst0::INSTR")
    with pytest.raises(ValueError, match=r"\[movable\] lacks max, min"):
        GenericSCPI(resource="X", movable={"set": "POS %g", "get": "POS?"})
    with pytest.raises(ValueError, match="unknown key"):
        GenericSCPI(resource="X", readable={"query": "READ?", "units": "V"})
    with pytest.raises(ValueError, match="needs a %g"):
        GenericSCPI(resource="X", switchable={"set": "OUTP", "get": "OUTP?"})
