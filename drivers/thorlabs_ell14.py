"""Thorlabs Elliptec ELL14 rotation mount (serial, the ELLx hex-position protocol).

Positions travel as eight hex digits of a signed 32-bit pulse count. How many pulses
make a turn is read from the mount itself (the ``in`` reply) when it is opened, so the
driver does not hard-code a figure that differs between firmware revisions.

A move command is answered only when the move ends (``PO`` with the final position);
this driver does not wait for that answer in :meth:`move_abs` — it returns once the move
is commanded, as :class:`capabilities.Movable` asks — and the late answer is dropped
before the next query. :meth:`wait_settled` polls ``gs`` until the mount is no longer
busy.

Parameters: ``jog_step`` (``gj``/``sj``, in degrees, converted with the mount's own
pulses per degree) and ``velocity`` (``gv``/``sv``, percent of the mount's maximum speed).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from capabilities import Limits, Parameter, ParameterValue, Reading
from drivers.toolkit import (
    Connection,
    DeviceReportedFault,
    MessageInstrument,
    control,
    hex32,
    in_range,
    measurement,
    setting,
    settle_deadline,
    signed_hex32,
)
from drivers.toolkit.serial_link import SerialLink

#: ``gs`` status codes from the ELLx protocol manual; 0 is OK, 9 is busy (moving).
STATUS = {
    1: "communication time-out",
    2: "mechanical time-out",
    3: "command error or not supported",
    4: "value out of range",
    5: "module isolated",
    6: "module out of isolation",
    7: "initialising error",
    8: "thermal error",
    10: "sensor error",
    11: "motor error",
    12: "out of range",
    13: "over current error",
}
BUSY = 9

JOG_STEP = Parameter(
    "jog_step",
    "float",
    unit="deg",
    low=0.0,
    high=360.0,
    description="how far one jog (the front buttons, or a jog command) turns the mount",
)


def _info(reply: str) -> tuple[int, int]:
    """(travel in degrees, pulses per travel) from the ``IN`` reply after ``<addr>IN``."""
    if len(reply) != 30:
        raise ValueError(reply)
    return int(reply[18:22], 16), int(reply[22:30], 16)


class ThorlabsELL14(MessageInstrument):
    """Capabilities: Movable (degrees), Stoppable."""

    info = measurement("{addr}in", prefix="{addr}IN", parse=_info, expected="device information")
    pulses = measurement(
        "{addr}gp", prefix="{addr}PO", parse=signed_hex32, expected="eight hex digits"
    )
    status = measurement("{addr}gs", prefix="{addr}GS", parse=lambda r: int(r, 16))
    # Moves are Movable's methods, which a share's range restricts: not parameters.
    move_absolute = setting("{addr}ma{}", format=hex32, check_errors=False, parameter=False)
    move_relative = setting("{addr}mr{}", format=hex32, check_errors=False, parameter=False)
    halt = measurement("{addr}st", prefix="{addr}GS", parse=lambda r: int(r, 16))
    jog_pulses = control(
        "{addr}gj",
        "{addr}sj{}",
        prefix="{addr}GJ",
        parse=signed_hex32,
        format=hex32,
        expected="eight hex digits",
        check_errors=False,
        parameter=False,  # in pulses: the parameter jog_step is in degrees
    )
    velocity = control(
        "{addr}gv",
        "{addr}sv{:02X}",
        prefix="{addr}GV",
        parse=lambda r: int(r, 16),
        expected="two hex digits",
        kind="int",
        validator=in_range(1, 100, "%"),
        check_errors=False,
        doc="speed of moves, percent of the mount's maximum",
    )

    def __init__(
        self,
        *,
        port: str,
        address: str = "0",
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        settle_timeout_s: float = 10.0,
    ) -> None:
        if len(address) != 1 or address.upper() not in "0123456789ABCDEF":
            raise ValueError(f"address must be one hex digit 0-F, got {address!r}")
        link = SerialLink(
            port,
            baudrate=baudrate,
            timeout_s=timeout_s,
            write_termination="",
            read_termination="\r\n",
        )
        self.address = address.upper()
        # The end-of-move report (PO, or GS on error) arrives unasked, after move_abs returned.
        late = (f"{self.address}PO", f"{self.address}GS")
        super().__init__(
            Connection(link, model="Thorlabs ELL14", timeout_s=timeout_s, unsolicited=late)
        )
        self.settle_timeout_s = settle_timeout_s
        self.pulses_per_degree = 0.0
        self._limits = Limits(0.0, 360.0, "deg")

    def command_fields(self) -> dict[str, object]:
        return {"addr": self.address}

    async def open(self) -> None:
        await super().open()
        travel, pulses = await self.info.get()
        if travel == 0 or pulses == 0:
            raise self.connection.unexpected(
                f"{self.address}in", f"travel {travel}, pulses {pulses}", "a non-zero travel"
            )
        self.pulses_per_degree = pulses / travel

    async def move_abs(self, position: float) -> None:
        self._limits.check(position, f"{self.label}: position")
        await self.move_absolute.set(round(position * self.pulses_per_degree))

    async def move_rel(self, delta: float) -> None:
        Limits(-360.0, 360.0, "deg").check(delta, f"{self.label}: relative move")
        await self.move_relative.set(round(delta * self.pulses_per_degree))

    async def position(self) -> Reading:
        return Reading(await self.pulses.get() / self.pulses_per_degree, "deg")

    async def wait_settled(self, timeout: float | None = None) -> Reading:
        with settle_deadline(self.label, timeout, self.settle_timeout_s):
            while (code := await self.status.get()) == BUSY:
                await trio.sleep(0.02)
        self._check(code)
        return await self.position()

    async def limits(self) -> Limits:
        return self._limits

    async def stop(self) -> None:
        self._check(await self.halt.get())

    # Configurable: jog_step is computed (pulses on the wire, degrees for people).

    async def parameters(self) -> Sequence[Parameter]:
        return [JOG_STEP, *self.declared_parameters()]

    async def get_parameter(self, name: str) -> ParameterValue:
        if name == JOG_STEP.name:
            return await self.jog_pulses.get() / self.pulses_per_degree
        return await super().get_parameter(name)

    async def set_parameter(self, name: str, value: ParameterValue) -> None:
        if name == JOG_STEP.name:
            degrees = float(JOG_STEP.check(value))
            await self.jog_pulses.set(round(degrees * self.pulses_per_degree))
            return
        await super().set_parameter(name, value)

    def _check(self, code: int) -> None:
        if code not in (0, BUSY):
            raise DeviceReportedFault(
                f"{self.label} reports status {code}: {STATUS.get(code, 'unknown')}; "
                "check that nothing blocks the mount and power-cycle it if it persists"
            )
