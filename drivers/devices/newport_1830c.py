"""A simulated Newport 1830-C optical power meter (RS-232, one-letter commands).

``D?`` reads the power in the selected units, ``U?``/``U1``..``U4`` the units
(W, dB, dBm, REL), ``W?``/``W633`` the wavelength in nm. Commands and replies end in LF.
The 1830-C has no error report: a command it does not know is ignored.
"""

from __future__ import annotations

import math
import os

from drivers.devices.serial_device import SerialDevice


class Newport1830CDevice(SerialDevice):
    command_termination = b"\n"
    reply_termination = "\n"

    def __init__(self, *, link: str | os.PathLike[str] | None = None, power_w: float = 1.5e-3):
        super().__init__(link=link)
        self.power_w = power_w
        self.units = 1
        self.wavelength_nm = 633
        self.reference_w = 1e-3

    def reading(self) -> float:
        if self.units == 1:
            return self.power_w
        if self.units == 2:
            return 10 * math.log10(self.power_w / self.reference_w)
        if self.units == 3:
            return 10 * math.log10(self.power_w / 1e-3)
        return self.power_w / self.reference_w

    def handle(self, command: str) -> str | None:
        command = command.strip()
        if command == "D?":
            return f"{self.reading():.4E}"
        if command == "U?":
            return str(self.units)
        if command == "W?":
            return f"{self.wavelength_nm:04d}"
        if len(command) > 1 and command[0] in "UW" and command[1:].isdigit():
            if command[0] == "U" and 1 <= int(command[1:]) <= 4:
                self.units = int(command[1:])
            elif command[0] == "W":
                self.wavelength_nm = int(command[1:])
        return None
