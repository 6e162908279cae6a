"""Lake Shore 336 temperature controller over VISA (USB appears as a serial port; LAN is
a TCP socket on port 7777).

Inputs A-D are channels (``tc/A``...), each a TemperatureSensor in kelvin. The heater
loop that controls an input is read from the controller (``OUTMODE?``) rather than
configured twice, so ``set_setpoint`` on input A drives whichever output loop the front
panel assigned to A; an input no loop controls refuses set points.

The 336 has no SCPI error queue and ignores commands it does not know, so set points are
validated here against ``max_setpoint_k`` (a safety limit for your sample) and read back.

A broken, unplugged or out-of-range sensor still gets a number from ``KRDG?``; only the
input's reading status (``RDGST?``) tells it is meaningless, so every temperature is
checked against it and a bad one raises :class:`~capabilities.MeasurementInvalid` instead
of being recorded as data (the controller and its other inputs stay ready).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capabilities import InvalidRequest, MeasurementInvalid, Reading
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


def _control_input(reply: str) -> int:
    """The control input of an ``OUTMODE?`` reply ``mode,input,powerup`` (0 = none, 1 = A)."""
    mode, control_input, _ = reply.split(",")
    return int(control_input) if int(mode) != 0 else 0


class LakeShoreInput(Channel):
    """One sensor input: TemperatureSensor, plus the set point of the loop that controls it."""

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

    async def set_setpoint(self, kelvin: float) -> None:
        """Set the set point of the heater loop controlling this input."""
        loop = await self.parent.loop_for(self.letter)
        await loop.setpoint.set(kelvin)
        if abs(await loop.setpoint.get() - kelvin) > 1e-3:
            raise InvalidRequest(f"{self.label}: the controller did not take set point {kelvin} K")

    async def setpoint(self) -> float:
        loop = await self.parent.loop_for(self.letter)
        return await loop.setpoint.get()


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
    )

    def __init__(self, parent: LakeShore336, number: int, limits: InRange) -> None:
        super().__init__(parent, f"loop {number}", {"loop": number})
        self.limits = limits


class LakeShore336(MessageInstrument):
    """Capabilities: HasChannels (A..D, each TemperatureSensor with a set point method)."""

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
