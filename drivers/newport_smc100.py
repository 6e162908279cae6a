"""Newport SMC100 single-axis motion controller (RS-232, ASCII commands such as ``1PA5.0``).

Every command starts with the controller address (1-31) and ends in CR LF. Motion
commands are not answered; the controller records an error letter instead, which the
toolkit reads with ``TE`` after each command, so a refused move raises
:class:`~drivers.toolkit.CommandRejected` with the manual's explanation.

The travel range is read from the controller's software limits (``SL?``/``SR?``) at open,
so a move outside them is refused before it is sent.

Parameters: ``velocity`` (``VA``) and ``acceleration`` (``AC``) of the moves that follow
(the controller keeps them until it is powered off; ``VA`` and ``AC`` are allowed in the
READY and DISABLE states).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from capabilities import Limits, Reading
from drivers.toolkit import (
    Connection,
    DeviceReportedFault,
    MessageInstrument,
    control,
    from_attribute,
    in_range,
    measurement,
    setting,
    settle_deadline,
)
from drivers.toolkit.serial_link import SerialLink

#: ``TE`` error letters from the SMC100 manual.
ERRORS = {
    "A": "unknown message code or floating point controller address",
    "B": "controller address not correct",
    "C": "parameter missing or out of range",
    "D": "command not allowed",
    "E": "home sequence already started",
    "G": "displacement out of limits",
    "H": "command not allowed in NOT REFERENCED state (home the stage first: home_on_open)",
    "I": "command not allowed in CONFIGURATION state",
    "J": "command not allowed in DISABLE state",
    "K": "command not allowed in READY state",
    "L": "command not allowed in HOMING state",
    "M": "command not allowed in MOVING state",
    "N": "current position out of software limit",
    "S": "communication time out",
    "U": "error during EEPROM access",
    "V": "error during command execution",
}

#: ``TS`` controller states, grouped as the manual lists them.
NOT_REFERENCED = {"0A", "0B", "0C", "0D", "0E", "0F", "10", "11"}
READY = {"32", "33", "34", "35"}
MOVING = {"28", "1E", "1F"}  # moving, homing


@dataclass(frozen=True)
class SMC100ErrorReport:
    """The SMC100's ``TE`` query: one letter, ``@`` when there is no error."""

    address: int

    @property
    def query(self) -> str:
        return f"{self.address}TE"

    def read_errors(self, ask: Callable[[str], str]) -> list[str]:
        reply = ask(self.query)
        prefix = self.query
        if not reply.startswith(prefix) or len(reply) != len(prefix) + 1:
            raise ValueError(reply)
        letter = reply[-1]
        return [] if letter == "@" else [f"{letter}: {ERRORS.get(letter, 'unknown error')}"]


def _status(reply: str) -> tuple[int, str]:
    """(positioner error bits, controller state) from ``TS``: 4 hex digits then 2."""
    if len(reply) != 6:
        raise ValueError(reply)
    return int(reply[:4], 16), reply[4:].upper()


class NewportSMC100(MessageInstrument):
    """Capabilities: Movable (mm, or the stage's unit), Stoppable."""

    current = measurement("{a}TP", prefix="{a}TP", unit="mm")
    status = measurement("{a}TS", prefix="{a}TS", parse=_status, expected="4+2 status digits")
    low_limit = measurement("{a}SL?", prefix="{a}SL")
    high_limit = measurement("{a}SR?", prefix="{a}SR")
    # Moves are Movable's methods, which a share's range restricts: not parameters.
    target_position = setting(
        "{a}PA{:.6g}", validator=from_attribute("travel"), unit="mm", parameter=False
    )
    move_relative = setting("{a}PR{:.6g}", unit="mm", parameter=False)
    velocity = control(
        "{a}VA?",
        "{a}VA{:.6g}",
        prefix="{a}VA",
        validator=in_range(1e-6, 1e12, "mm/s"),  # the manual's bounds; the stage's are lower
        doc="speed of the moves that follow (the stage's own maximum applies)",
    )
    acceleration = control(
        "{a}AC?",
        "{a}AC{:.6g}",
        prefix="{a}AC",
        validator=in_range(1e-6, 1e12, "mm/s^2"),
        doc="acceleration of the moves that follow",
    )

    def __init__(
        self,
        *,
        port: str,
        address: int = 1,
        baudrate: int = 57600,
        timeout_s: float = 1.0,
        settle_timeout_s: float = 60.0,
        home_on_open: bool = False,
    ) -> None:
        if not 1 <= address <= 31:
            raise ValueError(
                f"address must be 1..31 (the controller's RS-485 address), got {address}"
            )
        link = SerialLink(port, baudrate=baudrate, timeout_s=timeout_s, xonxoff=True)
        super().__init__(
            Connection(
                link,
                model="Newport SMC100",
                timeout_s=timeout_s,
                error_check=SMC100ErrorReport(address),
            )
        )
        self.address = address
        self.settle_timeout_s = settle_timeout_s
        self.home_on_open = home_on_open
        self.travel = Limits(0.0, 0.0, "mm")

    def command_fields(self) -> dict[str, object]:
        return {"a": self.address}

    async def open(self) -> None:
        await super().open()
        _, state = await self.status.get()
        if state in NOT_REFERENCED and self.home_on_open:
            await self.write(f"{self.address}OR")
            await self.wait_settled(self.settle_timeout_s)
        self.travel = Limits(await self.low_limit.get(), await self.high_limit.get(), "mm")

    async def move_abs(self, position: float) -> None:
        await self.target_position.set(position)

    async def move_rel(self, delta: float) -> None:
        target = (await self.current.get()) + delta
        self.travel.check(target, f"{self.label}: target of a relative move")
        await self.move_relative.set(delta)

    async def position(self) -> Reading:
        return Reading(await self.current.get(), "mm")

    async def wait_settled(self, timeout: float | None = None) -> Reading:
        with settle_deadline(self.label, timeout, self.settle_timeout_s):
            while True:
                errors, state = await self.status.get()
                if errors:
                    raise DeviceReportedFault(
                        f"{self.label} reports positioner errors 0x{errors:04X} (TS); "
                        "check the stage cable, end-of-run switches and following error"
                    )
                if state in READY:
                    return await self.position()
                if state not in MOVING:
                    raise DeviceReportedFault(
                        f"{self.label} stopped in state {state} (not READY); "
                        "it may need homing (home_on_open) or be disabled"
                    )
                await trio.sleep(0.02)

    async def limits(self) -> Limits:
        return self.travel

    async def stop(self) -> None:
        await self.write(f"{self.address}ST")
