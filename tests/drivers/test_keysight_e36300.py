"""The E36300 driver through the real pyvisa stack against a pyvisa-sim E36312A."""

from __future__ import annotations

import pytest
import trio

from capabilities import HasChannels, InvalidRequest, OutOfRange, capabilities_of
from drivers.devices import VisaTraffic, visa_library
from drivers.keysight_e36300 import E36300Output, KeysightE36300

RESOURCE = "USB0::0x2A8D::0x1102::MY59001234::INSTR"


def make() -> KeysightE36300:
    return KeysightE36300(
        resource=RESOURCE, visa_library=visa_library("keysight_e36300"), timeout_s=0.5
    )


def test_each_output_is_a_channel_with_voltage_source_and_switchable() -> None:
    supply = make()
    assert isinstance(supply, HasChannels)
    assert list(supply.channels()) == ["ch1", "ch2", "ch3"]
    for output in supply.channels().values():
        assert capabilities_of(output) == ["VoltageSource", "Switchable", "Configurable"]


def test_outputs_are_addressed_by_channel_list() -> None:
    async def main() -> None:
        supply = make()
        await supply.open()
        ch2 = supply.outputs["ch2"]
        await ch2.set_voltage(12.5)
        await ch2.set_current_limit(0.5)
        await ch2.set_on(True)
        assert await ch2.voltage_setpoint() == 12.5
        assert await ch2.current_limit() == 0.5
        assert await ch2.is_on()
        await supply.outputs["ch3"].set_voltage(3.0)
        assert await ch2.voltage_setpoint() == 12.5  # ch3 did not touch ch2
        readback = await ch2.readback()
        assert readback.voltage.unit == "V" and readback.voltage.value == pytest.approx(4.9987)
        assert not readback.in_compliance  # 0.1 A measured, 0.5 A limit
        await ch2.set_on(False)
        assert not await ch2.is_on()
        await supply.close()

    trio.run(main)


def test_each_output_has_its_own_range_checked_before_sending() -> None:
    async def main() -> None:
        supply = make()
        await supply.open()
        ch1: E36300Output = supply.outputs["ch1"]
        traffic = VisaTraffic(supply.connection.link._instrument)  # type: ignore[attr-defined]
        with pytest.raises(OutOfRange, match=r"ch1: voltage 12 V is outside \[0, 6.18\] V"):
            await ch1.set_voltage(12.0)  # fine on ch2 (25 V), too much for ch1 (6 V)
        with pytest.raises(OutOfRange, match="current"):
            await ch1.set_current_limit(6.0)
        assert traffic.commands == []
        await supply.outputs["ch2"].set_voltage(12.0)
        assert traffic.commands == ["VOLT 12.0000,(@2)", "SYST:ERR?"]
        traffic.detach()
        await supply.close()

    trio.run(main)


def test_each_output_has_its_protection_parameters_not_its_set_points() -> None:
    async def main() -> None:
        supply = make()
        ch2 = supply.outputs["ch2"]
        params = {p.name: p for p in await ch2.parameters()}
        assert list(params) == ["over_voltage_protection", "over_current_protection"]
        ovp = params["over_voltage_protection"]
        assert (ovp.kind, ovp.unit, ovp.low, ovp.high, ovp.channel) == (
            "float",
            "V",
            0,
            25.75,
            "ch2",
        )
        assert params["over_current_protection"].kind == "bool"
        assert all(p.description for p in params.values())
        assert (await supply.outputs["ch1"].parameters())[0].high == 6.18  # per output

        await supply.open()
        traffic = VisaTraffic(supply.connection.link._instrument)  # type: ignore[attr-defined]
        await ch2.set_parameter("over_voltage_protection", 12.0)
        await ch2.set_parameter("over_current_protection", True)
        assert await ch2.get_parameter("over_voltage_protection") == 12.0
        assert await ch2.get_parameter("over_current_protection") is True
        assert "VOLT:PROT 12.0000,(@2)" in traffic.commands
        assert "CURR:PROT:STAT 1,(@2)" in traffic.commands
        with pytest.raises(
            OutOfRange, match=r"over_voltage_protection \(ch2\) 30 V is outside \[0, 25.75\]"
        ):
            await ch2.set_parameter("over_voltage_protection", 30.0)
        with pytest.raises(InvalidRequest, match="has no parameter 'voltage'"):
            await ch2.set_parameter("voltage", 3.0)  # a VoltageSource method, restricted by shares
        assert not any(c.startswith("VOLT:PROT 30") for c in traffic.commands)
        traffic.detach()
        await supply.close()

    trio.run(main)
