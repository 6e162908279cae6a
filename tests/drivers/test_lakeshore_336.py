"""The Lake Shore 336 driver through the real pyvisa stack against pyvisa-sim."""

from __future__ import annotations

import pytest
import pyvisa
import trio
from pyvisa.resources import MessageBasedResource

from capabilities import (
    InvalidRequest,
    MeasurementInvalid,
    OutOfRange,
    capabilities_of,
)
from drivers.devices import VisaTraffic, visa_library
from drivers.lakeshore_336 import LakeShore336


@pytest.mark.parametrize("resource", ["TCPIP0::192.168.1.60::7777::SOCKET", "ASRL3::INSTR"])
def test_inputs_read_kelvin_and_drive_their_loop_set_point(resource: str) -> None:
    async def main() -> None:
        controller = LakeShore336(
            resource=resource, visa_library=visa_library("lakeshore_336"), timeout_s=0.5
        )
        inputs = controller.channels()
        assert list(inputs) == ["A", "B", "C", "D"]
        assert all(
            capabilities_of(i) == ["TemperatureSensor", "Configurable", "TemperatureController"]
            for i in inputs.values()
        )
        await controller.open()
        b = controller.inputs["B"]
        reading = await b.temperature()
        assert reading.value == pytest.approx(77.412) and reading.unit == "K"
        await b.set_temperature_setpoint(80.0)  # B is loop 2's input (OUTMODE? 2 -> 1,2,0)
        assert await b.temperature_setpoint() == 80.0
        assert await controller.loops[2].setpoint.get() == 80.0
        with pytest.raises(InvalidRequest, match="no heater loop is controlled by input C"):
            await controller.inputs["C"].set_temperature_setpoint(10.0)
        await controller.close()

    trio.run(main)


def test_set_points_above_the_safety_limit_are_not_sent() -> None:
    async def main() -> None:
        controller = LakeShore336(
            resource="TCPIP0::192.168.1.60::7777::SOCKET",
            visa_library=visa_library("lakeshore_336"),
            max_setpoint_k=350.0,
        )
        await controller.open()
        traffic = VisaTraffic(controller.connection.link._instrument)  # type: ignore[attr-defined]
        with pytest.raises(OutOfRange, match=r"setpoint 500 K is outside \[0, 350\] K"):
            await controller.inputs["A"].set_temperature_setpoint(500.0)
        assert not any(c.startswith("SETP ") for c in traffic.commands)
        traffic.detach()
        await controller.close()

    trio.run(main)


@pytest.mark.parametrize(
    ("bits", "words"),
    [
        (1, "invalid reading"),
        (16, "temperature underrange"),
        (33, "invalid reading, temperature overrange"),
    ],
)
def test_a_sensor_error_is_raised_instead_of_returning_its_number(bits: int, words: str) -> None:
    resource = "TCPIP0::192.168.1.60::7777::SOCKET"
    # A second session to the same simulated controller (pyvisa-sim shares the device
    # between sessions of one library): the test's hand on the sensor cable.
    bench = pyvisa.ResourceManager(visa_library("lakeshore_336")).open_resource(
        resource, read_termination="\r\n", write_termination="\r\n"
    )
    assert isinstance(bench, MessageBasedResource)

    async def main() -> None:
        controller = LakeShore336(resource=resource, visa_library=visa_library("lakeshore_336"))
        await controller.open()
        bench.write(f"SIM:RDGST A,{bits}")
        try:
            with pytest.raises(MeasurementInvalid) as raised:
                await controller.inputs["A"].temperature()
            assert str(raised.value).startswith(
                f"Lake Shore 336 at {resource} input A: the sensor reading is not valid "
                f"(RDGST? {bits}: {words}); check the sensor's wiring"
            )
            # Only input A is broken; B still reads.
            assert (await controller.inputs["B"].temperature()).value == pytest.approx(77.412)
        finally:
            bench.write("SIM:RDGST A,0")
        assert (await controller.inputs["A"].temperature()).value == pytest.approx(293.15)
        await controller.close()

    try:
        trio.run(main)
    finally:
        bench.close()


def test_each_input_has_its_loops_parameters_and_controls_its_temperature() -> None:
    async def main() -> None:
        controller = LakeShore336(
            resource="TCPIP0::192.168.1.60::7777::SOCKET",
            visa_library=visa_library("lakeshore_336"),
            max_setpoint_k=350.0,
        )
        a = controller.inputs["A"]
        params = {p.name: p for p in await a.parameters()}  # listed before open: no I/O
        assert list(params) == ["setpoint", "ramp_rate", "heater_range"]
        assert (params["setpoint"].unit, params["setpoint"].high) == ("K", 350.0)
        assert (params["ramp_rate"].unit, params["ramp_rate"].high) == ("K/min", 100.0)
        assert params["heater_range"].choices == ("off", "low", "medium", "high")
        assert all(p.channel == "A" and p.description for p in params.values())
        assert list(await controller.parameters()) == []  # the controller itself has none

        await controller.open()
        traffic = VisaTraffic(controller.connection.link._instrument)  # type: ignore[attr-defined]
        await a.set_parameter("ramp_rate", 2.5)
        assert await a.get_parameter("ramp_rate") == 2.5 and await a.ramp_rate() == 2.5
        assert "RAMP 1,1,2.5" in traffic.commands  # input A is loop 1's
        await a.set_ramp_rate(0.0)
        assert "RAMP 1,0,0" in traffic.commands and await a.ramp_rate() == 0.0
        await a.set_parameter("heater_range", "medium")
        assert await a.get_parameter("heater_range") == "medium"
        assert "RANGE 1,2" in traffic.commands
        await a.set_parameter("setpoint", 120.0)
        assert await a.temperature_setpoint() == 120.0
        heater = await controller.inputs["B"].heater_output()
        assert (heater.value, heater.unit) == (12.5, "%")

        with pytest.raises(OutOfRange, match=r"below the 336's 0.1 K/min"):
            await a.set_ramp_rate(0.05)
        with pytest.raises(OutOfRange, match=r"ramp_rate \(A\) 500 K/min is outside \[0, 100\]"):
            await a.set_parameter("ramp_rate", 500.0)
        with pytest.raises(OutOfRange, match="'max' is not one of: off, low, medium, high"):
            await a.set_parameter("heater_range", "max")
        with pytest.raises(InvalidRequest, match="no heater loop is controlled by input C"):
            await controller.inputs["C"].get_parameter("ramp_rate")
        with pytest.raises(InvalidRequest, match="has no parameter 'gain'"):
            await a.get_parameter("gain")
        assert not any(c.startswith(("RAMP 1,1,500", "RANGE 1,max")) for c in traffic.commands)
        traffic.detach()
        await controller.close()

    trio.run(main)
