"""A simulated Newport SMC100 single-axis motion controller (ASCII, ``1PA5.0`` style).

Commands and replies end in CR LF and start with the controller address. Commands that
fail set an error letter, read (and cleared) by ``TE``, as the real controller does.
``VA``/``VA?`` and ``AC``/``AC?`` set and read the velocity (moves run at it, at
constant speed) and the acceleration (kept, not simulated).
"""

from __future__ import annotations

import os
import time

from drivers.devices.serial_device import SerialDevice

NOT_REFERENCED = "0A"
HOMING = "1E"
MOVING = "28"
READY_FROM_HOMING = "32"
READY_FROM_MOVING = "33"


class SMC100Device(SerialDevice):
    command_termination = b"\r\n"
    reply_termination = "\r\n"

    def __init__(
        self,
        *,
        link: str | os.PathLike[str] | None = None,
        address: int = 1,
        referenced: bool = True,
        mm_per_s: float = 20.0,
        travel: tuple[float, float] = (-12.5, 12.5),
    ) -> None:
        super().__init__(link=link)
        self.address = str(address)
        self.velocity = mm_per_s
        self.acceleration = 80.0
        self.low, self.high = travel
        self.position = 0.0
        self.state = READY_FROM_HOMING if referenced else NOT_REFERENCED
        self.error = "@"
        self._move: tuple[float, float, float] | None = None

    def _current(self) -> float:
        if self._move is None:
            return self.position
        start, target, t0 = self._move
        travelled = (time.monotonic() - t0) * self.velocity
        if travelled >= abs(target - start):
            return target
        return start + travelled * (1 if target > start else -1)

    def handle(self, command: str) -> str | None:
        a = self.address
        if not command.startswith(a):
            return None
        verb, arg = command[len(a) : len(a) + 2], command[len(a) + 2 :]
        if verb == "TP":
            return f"{a}TP{self._current():.6f}"
        if verb == "TS":
            return f"{a}TS0000{self.state}"
        if verb == "TE":
            error, self.error = self.error, "@"
            return f"{a}TE{error}"
        if verb == "VE":
            return f"{a}VE SMC_CC - Controller-driver version 3.0.1"
        if verb in ("SL", "SR") and arg == "?":
            return f"{a}{verb}{self.low if verb == 'SL' else self.high:g}"
        if verb in ("VA", "AC"):
            return self._setting(verb, arg)
        if verb == "ST":
            self.position, self._move = self._current(), None
            self.state = READY_FROM_MOVING
            return None
        if verb == "OR":
            self.position, self._move = self._current(), (self._current(), 0.0, time.monotonic())
            self.state = HOMING
            return None
        if verb in ("PA", "PR"):
            self._move_command(verb, arg)
            return None
        self.error = "A"  # unknown message code
        return None

    def _setting(self, verb: str, arg: str) -> str | None:
        attribute = "velocity" if verb == "VA" else "acceleration"
        if arg == "?":
            return f"{self.address}{verb}{getattr(self, attribute):g}"
        try:
            value = float(arg)
        except ValueError:
            value = 0.0
        if not 1e-6 < value < 1e12:
            self.error = "C"  # parameter missing or out of range
            return None
        if attribute == "velocity" and self._move is not None:  # goes on at the new speed
            now = self._current()
            self.position, self._move = now, (now, self._move[1], time.monotonic())
        setattr(self, attribute, value)
        return None

    def _move_command(self, verb: str, arg: str) -> None:
        if self.state == NOT_REFERENCED:
            self.error = "H"  # not allowed in NOT REFERENCED state
            return
        try:
            value = float(arg)
        except ValueError:
            self.error = "C"  # parameter missing or out of range
            return
        now = self._current()
        target = value if verb == "PA" else now + value
        if not self.low <= target <= self.high:
            self.error = "G"  # displacement out of limits
            return
        self.position, self._move = now, (now, target, time.monotonic())
        self.state = MOVING

    def poll(self) -> list[str]:
        if self._move is not None and self._current() == self._move[1]:
            self.position, self._move = self._move[1], None
            self.state = READY_FROM_HOMING if self.state == HOMING else READY_FROM_MOVING
        return []
