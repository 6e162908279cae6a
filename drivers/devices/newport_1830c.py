"""A simulated Newport 1830-C optical power meter (RS-232, one-letter commands).

``D?`` reads the power in the selected units, ``U?``/``U1``..``U4`` the units
(W, dB, dBm, REL), ``W?``/``W633`` the wavelength in nm, ``A?``/``A0``/``A1``
auto-ranging, ``R?``/``R1``..``R8`` the range (a fixed range ends auto-ranging),
``F?``/``F1``..``F3`` the filter (slow, medium, fast). Commands and replies end in LF.
The 1830-C has no error report: a command it does not know is ignored.

With ``beam_nm`` the simulated beam has that wavelength and the meter reads the power
as corrected for the wavelength it is set to (:func:`drivers.sim.power_meter.responsivity`),
so a meter set to the wrong wavelength reads wrong, as a real one does. In a fixed range
a power above its full scale (range 1: 2 µW, each next one 10× more; range 8 20 W)
reads as the full scale: the meter saturates.
"""

from __future__ import annotations

import math
import os

from drivers.devices.serial_device import SerialDevice
from drivers.sim.power_meter import responsivity

#: Full scale of range 1 in W; each higher range is ten times more.
RANGE_1_W = 2e-6


class Newport1830CDevice(SerialDevice):
    command_termination = b"\n"
    reply_termination = "\n"

    def __init__(
        self,
        *,
        link: str | os.PathLike[str] | None = None,
        power_w: float = 1.5e-3,
        beam_nm: float | None = None,
    ):
        super().__init__(link=link)
        self.power_w = power_w
        self.beam_nm = beam_nm
        self.units = 1
        self.wavelength_nm = 633
        self.reference_w = 1e-3
        self.auto_range = True
        self.range = 4
        self.filter = 3

    def measured_w(self) -> float:
        watts = self.power_w
        if self.beam_nm is not None:
            watts *= responsivity(self.beam_nm) / responsivity(self.wavelength_nm)
        if not self.auto_range:
            watts = min(watts, RANGE_1_W * 10 ** (self.range - 1))
        return watts

    def reading(self) -> float:
        watts = self.measured_w()
        if self.units == 1:
            return watts
        if self.units == 2:
            return 10 * math.log10(watts / self.reference_w)
        if self.units == 3:
            return 10 * math.log10(watts / 1e-3)
        return watts / self.reference_w

    def handle(self, command: str) -> str | None:
        command = command.strip()
        queries = {
            "D?": lambda: f"{self.reading():.4E}",
            "U?": lambda: str(self.units),
            "W?": lambda: f"{self.wavelength_nm:04d}",
            "A?": lambda: str(int(self.auto_range)),
            "R?": lambda: str(self.range),
            "F?": lambda: str(self.filter),
        }
        if command in queries:
            return queries[command]()
        if len(command) > 1 and command[0] in "UWARF" and command[1:].isdigit():
            letter, n = command[0], int(command[1:])
            if letter == "U" and 1 <= n <= 4:
                self.units = n
            elif letter == "W":
                self.wavelength_nm = n
            elif letter == "A" and n in (0, 1):
                self.auto_range = bool(n)
            elif letter == "R" and 1 <= n <= 8:
                self.range, self.auto_range = n, False
            elif letter == "F" and 1 <= n <= 3:
                self.filter = n
        return None
