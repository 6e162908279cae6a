"""Lake Shore 336 temperature controller over VISA (USB appears as a serial port; LAN is
a TCP socket on port 7777).

Inputs A-D are channels (``tc/A``...), each a TemperatureSensor in kelvin and a
TemperatureController. The heater loop that controls an input is read from the
controller (``OUTMODE?``) rather than configured twice, so ``set_temperature_setpoint``
on input A drives whichever output loop the front panel assigned to A; an input no loop
controls refuses set points. Each input's parameters (``setpoint``, ``ramp_rate``,
``heater_range``) are those of the loop that controls it.

The 336 has no SCPI error queue and ignores commands it does not know, so set points are
validated here against ``max_setpoint_k`` (a safety limit for your sample) and read back.

A broken, unplugged or out-of-range sensor still gets a number from ``KRDG?``; only the
input's reading status (``RDGST?``) tells it is meaningless, so every temperature is
checked against it and a bad one raises :class:`~capabilities.MeasurementInvalid` instead
of being recorded as data (the controller and its other inputs stay ready).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from capabilities import (
    InvalidRequest,
    MeasurementInvalid,
    OutOfRange,
    Parameter,
    ParameterValue,
    Reading,
)
from capabilities.parameters import find
from drivers.toolkit import (
    Channel,
    Connection,
    MessageInstrument,
    control,
    from_attribute,
    in_range,
    measurement,
)
from drivers.toolkit.validators import InRange
from drivers.toolkit.visa_link import VisaLink

INPUTS = ("A", "B", "C", "D")
LOOPS = (1, 2, 3, 4)

#: ``RDGST?`` bits (Model 336 manual, chapter 6); any of them makes the reading invalid.
READING_STATUS = {
    1: "invalid reading",
    16: "temperature underrange",
    32: "temperature overrange",
    64: "sensor units zero",
    128: "sensor units overrange",
}


def describe_status(bits: int) -> str:
    """``RDGST?`` bits in words, e.g. ``"invalid reading, temperature overrange"``."""
    names = [name for bit, name in READING_STATUS.items() if bits & bit]
    names += [f"bit {b}" for b in range(8) if bits & (1 << b) and (1 << b) not in READING_STATUS]
    return ", ".join(names)


#: ``RANGE`` codes of the heater outputs 1 and 2 (outputs 3 and 4 know only 0 off, 1 on).
HEATER_RANGES = {"off": 0, "low": 1, "medium": 2, "high": 3}

#: What the 336 accepts as a ramp rate, K/min (0 here: ramping off).
RAMP_RATES = in_range(0, 100, "K/min")


def _ramp(reply: str) -> float:
    """The rate of a ``RAMP?`` reply ``on,rate``: K/min, 0 when ramping is off."""
    on, rate = reply.split(",")
    return float(rate) if int(on) else 0.0


def _ramp_command(rate: float) -> str:
    """``on,rate`` for ``RAMP n,on,rate``: 0 K/min turns ramping off."""
    if 0 < rate < 0.1:
        raise ValueError(rate)  # refused before this by _Loop.set_ramp_rate
    return "0,0" if rate == 0 else f"1,{rate:.1f}"


def _control_input(reply: str) -> int:
    """The control input of an ``OUTMODE?`` reply ``mode,input,powerup`` (0 = none, 1 = A)."""
    mode, control_input, _ = reply.split(",")
    return int(control_input) if int(mode) != 0 else 0


class LakeShoreInput(Channel):
    """One sensor input: TemperatureSensor, and TemperatureController through the loop
    that controls it (whose parameters it shows as its own)."""

    kelvin = measurement("KRDG? {input}", unit="K")
    reading_status = measurement("RDGST? {input}", parse=int, expected="a status number 0-255")

    def __init__(self, parent: LakeShore336, letter: str) -> None:
        super().__init__(parent, letter, {"input": letter})
        self.parent = parent
        self.letter = letter

    async def temperature(self) -> Reading:
        kelvin = await self.kelvin.get()
        # Asked after the reading, not before: a sensor failing in between then costs a
        # good reading, never lets a bad one through.
        bits = await self.reading_status.get()
        if bits:
            raise MeasurementInvalid(
                f"{self.connection.name} input {self.letter}: the sensor reading is not valid "
                f"(RDGST? {bits}: {describe_status(bits)}); check the sensor's wiring and "
                "that the input's sensor type and curve match the sensor"
            )
        return Reading(kelvin, "K")

    # TemperatureController

    async def set_temperature_setpoint(self, kelvin: float) -> None:
        """Set the set point of the heater loop controlling this input."""
        await (await self.parent.loop_for(self.letter)).set_setpoint(kelvin)

    async def temperature_setpoint(self) -> float:
        return await (await self.parent.loop_for(self.letter)).setpoint.get()

    async def ramp_rate(self) -> float:
        return await (await self.parent.loop_for(self.letter)).ramp.get()

    async def set_ramp_rate(self, kelvin_per_min: float) -> None:
        await (await self.parent.loop_for(self.letter)).set_ramp_rate(kelvin_per_min)

    async def heater_output(self) -> Reading:
        return Reading(await (await self.parent.loop_for(self.letter)).heater.get(), "%")

    # Configurable: the parameters of the controlling loop, described without I/O (all
    # loops describe them alike), read and set on the loop OUTMODE? names.

    async def parameters(self) -> Sequence[Parameter]:
        loop = self.parent.loops[1]
        return [replace(p, channel=self.letter) for p in await loop.parameters()]

    async def get_parameter(self, name: str) -> ParameterValue:
        await self._known(name)
        return await (await self.parent.loop_for(self.letter)).get_parameter(name)

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        checked = (await self._known(name)).check(value)  # refused naming this input
        await (await self.parent.loop_for(self.letter)).set_parameter(name, checked)

    async def _known(self, name: str) -> Parameter:
        return find(list(await self.parameters()), name, self.label)


class _Loop(Channel):
    control_input = measurement(
        "OUTMODE? {loop}", parse=_control_input, expected="mode,input,powerup"
    )
    setpoint = control(
        "SETP? {loop}",
        "SETP {loop},{:.3f}",
        validator=from_attribute("limits"),
        check_errors=False,
        unit="K",
        doc="the loop's set point (it ramps there at ramp_rate when ramping is on)",
    )
    ramp = control(
        "RAMP? {loop}",
        "RAMP {loop},{}",
        parse=_ramp,
        format=_ramp_command,
        expected="on,rate",
        validator=RAMP_RATES,
        check_errors=False,
        name="ramp_rate",
        doc="how fast the set point moves to a new value, 0.1-100 K/min; 0: it jumps",
    )
    heater_range = control(
        "RANGE? {loop}",
        "RANGE {loop},{}",
        parse=int,
        expected="a heater range 0-3",
        choices=HEATER_RANGES,
        check_errors=False,
        doc="heater power range (loops 3 and 4: off or low, which is on)",
    )
    heater = measurement("{heater_query} {loop}", unit="%")

    def __init__(self, parent: LakeShore336, number: int, limits: InRange) -> None:
        # Outputs 1 and 2 are heaters (HTR?); 3 and 4 are analog voltage outputs (AOUT?).
        query = "HTR?" if number <= 2 else "AOUT?"
        super().__init__(parent, f"loop {number}", {"loop": number, "heater_query": query})
        self.limits = limits

    async def set_setpoint(self, kelvin: float) -> None:
        await self.setpoint.set(kelvin)
        # The 336 has no error queue: read back what it took.
        if abs(await self.setpoint.get() - kelvin) > 1e-3:
            raise InvalidRequest(f"{self.label}: the controller did not take set point {kelvin} K")

    async def set_ramp_rate(self, kelvin_per_min: float) -> None:
        if 0 < kelvin_per_min < 0.1:
            raise OutOfRange(
                f"{self.label}: ramp rate {kelvin_per_min:g} K/min is below the 336's 0.1 K/min;"
                " give 0 (off) or 0.1-100"
            )
        await self.ramp.set(kelvin_per_min)

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        # The capability methods' checks apply to a parameter set too.
        if name == "setpoint" and isinstance(value, float):
            find(list(await self.parameters()), name, self.label).check(value)
            await self.set_setpoint(value)
        elif name == "ramp_rate" and isinstance(value, float):
            find(list(await self.parameters()), name, self.label).check(value)
            await self.set_ramp_rate(value)
        else:
            await super().set_parameter(name, value)


class LakeShore336(MessageInstrument):
    """Capabilities: HasChannels (A..D, each TemperatureSensor, TemperatureController and
    Configurable)."""

    identity = measurement("*IDN?", parse=str)

    def __init__(
        self,
        *,
        resource: str,
        visa_library: str = "@py",
        timeout_s: float = 2.0,
        max_setpoint_k: float = 400.0,
    ) -> None:
        options: dict[str, Any] = {}
        if resource.upper().startswith("ASRL"):
            from pyvisa.constants import Parity

            options = {"baud_rate": 57600, "data_bits": 7, "parity": Parity.odd}
        link = VisaLink(
            resource,
            visa_library=visa_library,
            timeout_s=timeout_s,
            read_termination="\r\n",
            write_termination="\r\n",
            resource_options=options,
        )
        super().__init__(Connection(link, model="Lake Shore 336", timeout_s=timeout_s))
        limits = in_range(0, max_setpoint_k, "K")
        self.inputs = {letter: LakeShoreInput(self, letter) for letter in INPUTS}
        self.loops = {n: _Loop(self, n, limits) for n in LOOPS}

    def channels(self) -> Mapping[str, object]:
        return self.inputs

    async def open(self) -> None:
        await super().open()
        identity = await self.identity.get()
        if "MODEL336" not in identity:
            raise self.connection.unexpected("*IDN?", identity, "a Lake Shore MODEL336")

    async def loop_for(self, letter: str) -> _Loop:
        """The output loop whose control input is ``letter`` (asked of the controller)."""
        wanted = INPUTS.index(letter) + 1
        for loop in self.loops.values():
            if await loop.control_input.get() == wanted:
                return loop
        raise InvalidRequest(
            f"{self.label}: no heater loop is controlled by input {letter}; assign one on "
            "the front panel (Outputs > Control Input) or with OUTMODE"
        )
