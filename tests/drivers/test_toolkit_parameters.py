"""Declarations become parameters: a toolkit driver over real pyvisa-sim, and in-memory values."""

from __future__ import annotations

import pytest
import trio

from capabilities import Configurable, InvalidRequest, OutOfRange, Parameter, capabilities_of
from drivers.devices import VisaTraffic, visa_library
from drivers.toolkit import (
    Connection,
    DeclaredParameters,
    MessageInstrument,
    ScpiErrorQueue,
    control,
    in_range,
    one_of,
    scpi_bool,
    setting,
    value,
)
from drivers.toolkit.visa_link import VisaLink

RESOURCE = "TCPIP0::10.0.0.7::inst0::INSTR"


class Attenuator(MessageInstrument):
    """The simulated attenuator of scpi_generic.yaml, declared with the toolkit."""

    position = control(
        "POS?", "POS {:g}", validator=in_range(-50, 50, "mm"), doc="where the wedge sits"
    )
    shutter = control(
        "OUTP?",
        "OUTP {}",
        parse=int,
        choices={"closed": 0, "open": 1},
        doc="the output shutter",
    )
    output = control("OUTP?", "OUTP {}", parse=scpi_bool, format=int, parameter=False)
    abort = setting("POS {:g}", validator=in_range(-50, 50), unit="mm", doc="a move, unread")
    mode = setting("MODE {}", format=str, validator=one_of("fast", "slow"), doc="a choice")

    def __init__(self) -> None:
        link = VisaLink(RESOURCE, visa_library=visa_library("scpi_generic"), timeout_s=1.0)
        super().__init__(
            Connection(link, model="ACME ATT-100", timeout_s=1.0, error_check=ScpiErrorQueue())
        )


def test_controls_and_settings_are_parameters_with_kind_range_choices_and_description() -> None:
    async def main() -> None:
        attenuator = Attenuator()
        assert "Configurable" in capabilities_of(attenuator)
        described = {p.name: p for p in await attenuator.parameters()}  # no I/O: not opened
        assert list(described) == ["position", "shutter", "abort", "mode"]
        assert described["position"] == Parameter(
            "position", "float", unit="mm", low=-50, high=50, description="where the wedge sits"
        )
        assert described["shutter"].kind == "choice"
        assert described["shutter"].choices == ("closed", "open")
        assert (described["abort"].writable, described["abort"].readable) == (True, False)
        assert described["mode"].choices == ("fast", "slow")

    trio.run(main)


def test_get_and_set_go_over_the_wire_with_labels_for_choices() -> None:
    async def main() -> None:
        attenuator = Attenuator()
        await attenuator.open()
        traffic = VisaTraffic(attenuator.connection.link._instrument)  # type: ignore[attr-defined]
        await attenuator.set_parameter("position", 12.5)
        assert await attenuator.get_parameter("position") == 12.5
        await attenuator.set_parameter("shutter", "open")
        assert await attenuator.get_parameter("shutter") == "open"
        assert await attenuator.output.get() is True  # driver code keeps raw values
        assert "OUTP 1" in traffic.commands

        with pytest.raises(OutOfRange, match=r"position 80 mm is outside \[-50, 50\] mm"):
            await attenuator.set_parameter("position", 80.0)
        with pytest.raises(OutOfRange, match="'ajar' is not one of: closed, open"):
            await attenuator.set_parameter("shutter", "ajar")
        with pytest.raises(InvalidRequest, match="abort is write-only"):
            await attenuator.get_parameter("abort")
        with pytest.raises(InvalidRequest, match=r"has no parameter 'output' \(its parameters"):
            await attenuator.set_parameter("output", True)  # parameter=False
        assert not any(c.startswith("POS 8") for c in traffic.commands)
        traffic.detach()
        await attenuator.close()

    trio.run(main)


def test_a_declaration_whose_kind_cannot_be_told_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match="give kind="):

        class Bad(MessageInstrument):
            status = control("ST?", "ST {}", parse=lambda r: r.split(","))


class Oven(DeclaredParameters):
    """In-memory values, as a simulator declares them."""

    setpoint = value(
        20.0, unit="degC", low=0.0, high="limit", doc="target", on_change="_setpoint_changed"
    )
    fan = value(True, doc="fan on")
    program = value("idle", choices=("idle", "bake"), doc="what it runs")
    hours = value(0, writable=False, doc="hours of use")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.applied: list[float] = []

    async def _setpoint_changed(self) -> None:
        if self.setpoint > 200 and self.program == "idle":
            raise InvalidRequest("start a program before heating above 200 degC")
        self.applied.append(self.setpoint)


def test_values_check_store_call_their_hook_and_keep_the_old_value_if_it_refuses() -> None:
    async def main() -> None:
        oven = Oven(limit=250.0)
        assert isinstance(oven, Configurable)
        kinds = {p.name: (p.kind, p.high, p.writable) for p in await oven.parameters()}
        assert kinds == {
            "setpoint": ("float", 250.0, True),
            "fan": ("bool", None, True),
            "program": ("choice", None, True),
            "hours": ("int", None, False),
        }
        await oven.set_parameter("setpoint", 150)
        assert oven.setpoint == 150.0 and oven.applied == [150.0]
        with pytest.raises(OutOfRange, match=r"setpoint 300 degC is outside \[0, 250\]"):
            await oven.set_parameter("setpoint", 300.0)
        with pytest.raises(InvalidRequest, match="start a program"):
            await oven.set_parameter("setpoint", 220.0)
        assert await oven.get_parameter("setpoint") == 150.0  # the refused value is gone
        with pytest.raises(InvalidRequest, match="hours is read-only"):
            await oven.set_parameter("hours", 3)
        with pytest.raises(InvalidRequest, match="expected true or false"):
            await oven.set_parameter("fan", "yes")
        oven.hours = 7  # the instrument's own code assigns (checked, no hook)
        assert await oven.get_parameter("hours") == 7
        with pytest.raises(OutOfRange):
            oven.setpoint = -5.0

    trio.run(main)
