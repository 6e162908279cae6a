"""A simulated Thorlabs Elliptec ELL14 rotation mount (ELLx protocol, hex positions).

Commands are ``<address><two letters>[8 hex digits]`` with no terminator; replies end in
CR LF. A move is answered when it ends, with the final ``PO`` position (or a ``GS``
status on error); while it runs, ``gs`` answers ``09`` (busy). ``gj``/``sj`` read and set
the jog step (pulses), ``gv``/``sv`` the velocity (two hex digits, percent of the
maximum: a move at 50 % takes twice as long).
"""

from __future__ import annotations

import os
import time

from drivers.devices.serial_device import SerialDevice

#: What our simulated ELL14 reports in its ``in`` reply (pulses per revolution).
PULSES_PER_REVOLUTION = 143360

#: Commands that carry data, and how many hex digits.
_WITH_DATA = {"ma": 8, "mr": 8, "so": 8, "sj": 8, "sv": 2}


def _signed(text: str) -> int:
    value = int(text, 16)
    return value - (1 << 32) if value & (1 << 31) else value


def _hex(value: int) -> str:
    return f"{value & 0xFFFFFFFF:08X}"


class ELL14Device(SerialDevice):
    reply_termination = "\r\n"

    def __init__(
        self,
        *,
        link: str | os.PathLike[str] | None = None,
        address: str = "0",
        degrees_per_s: float = 720.0,
    ) -> None:
        super().__init__(link=link)
        self.address = address
        self.max_pulses_per_s = degrees_per_s * PULSES_PER_REVOLUTION / 360
        self.velocity_percent = 100
        self.jog_pulses = PULSES_PER_REVOLUTION // 72  # 5 degrees
        self.position = 0.0
        """Pulses; a float so a move can be interpolated."""
        self._move: tuple[float, float, float] | None = None  # (start, target, start time)

    def split(self, buffer: bytearray) -> list[str]:
        commands = []
        while buffer:
            if buffer[0] in b"\r\n":
                del buffer[:1]  # some hosts terminate anyway; the device ignores it
                continue
            if len(buffer) < 3:
                break
            size = 3 + _WITH_DATA.get(buffer[1:3].decode("latin-1"), 0)
            if len(buffer) < size:
                break
            commands.append(buffer[:size].decode("latin-1"))
            del buffer[:size]
        return commands

    def moving(self) -> bool:
        return self._move is not None

    @property
    def pulses_per_s(self) -> float:
        return self.max_pulses_per_s * self.velocity_percent / 100

    def _current(self) -> float:
        if self._move is None:
            return self.position
        start, target, t0 = self._move
        travelled = (time.monotonic() - t0) * self.pulses_per_s
        if travelled >= abs(target - start):
            return target
        return start + travelled * (1 if target > start else -1)

    def handle(self, command: str) -> str | None:
        a, verb, data = command[0], command[1:3], command[3:]
        if a != self.address:
            return None  # addressed to another module on the bus
        if verb == "in":
            return f"{a}IN0E1140018420211501{360:04X}{PULSES_PER_REVOLUTION:08X}"
        if verb == "gp":
            return f"{a}PO{_hex(round(self._current()))}"
        if verb == "gs":
            return f"{a}GS{'09' if self.moving() else '00'}"
        if verb == "st":
            self.position, self._move = self._current(), None
            return f"{a}GS00"
        if verb == "gj":
            return f"{a}GJ{_hex(self.jog_pulses)}"
        if verb == "gv":
            return f"{a}GV{self.velocity_percent:02X}"
        if verb in ("sj", "sv"):
            try:
                number = _signed(data) if verb == "sj" else int(data, 16)
            except ValueError:
                return f"{a}GS04"
            if verb == "sj":
                self.jog_pulses = number
            elif 0 < number <= 100:
                if self._move is not None:  # a move under way goes on at the new speed
                    self.position = self._current()
                    self._move = (self.position, self._move[1], time.monotonic())
                self.velocity_percent = number
            else:
                return f"{a}GS04"
            return f"{a}GS00"
        if verb in ("ma", "mr"):
            try:
                value = _signed(data)
            except ValueError:
                return f"{a}GS04"  # value out of range
            now = self._current()
            base = self._move[1] if self._move is not None else now
            target = value if verb == "ma" else base + value
            self.position, self._move = now, (now, float(target), time.monotonic())
            return None  # answered when the move ends, by poll()
        return f"{a}GS03"  # command not supported

    def poll(self) -> list[str]:
        if self._move is None or self._current() != self._move[1]:
            return []
        # Finished: a real rotation mount reports the position wrapped to one turn.
        self.position, self._move = self._move[1] % PULSES_PER_REVOLUTION, None
        return [f"{self.address}PO{_hex(round(self.position))}"]
